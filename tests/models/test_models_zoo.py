"""The preset zoo: names, sources, and parameter counts against the published ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tessera.models import PRESETS, ModelConfigError, build_model, check_buildable, zoo

ZOO_NAMES = {
    "llama2-7b", "llama2-13b", "llama2-70b", "llama3-8b", "llama3-70b", "llama3.1-8b",
    "llama3.1-70b", "llama3.1-405b", "llama3.3-70b", "llama4-scout", "llama4-maverick",
    "qwen3-8b", "qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b", "gpt-oss-20b",
    "gpt-oss-120b", "mistral-7b", "mixtral-8x7b", "deepseek-v3", "gpt3-125m", "gpt3-350m",
    "gpt3-760m", "gpt3-1.3b", "gpt3-2.7b", "gpt3-6.7b", "gpt3-13b", "gpt3-175b",
    "megatron-gpt-22b", "megatron-gpt-175b", "megatron-gpt-530b", "megatron-gpt-1t",
    "bert-base", "bert-large", "gpt2", "tiny-llama", "tiny-gpt2", "tiny-bert",
}

HF = "https://huggingface.co"
# (published total, published active or None, relative tolerance, where it is published).
# Totals on a Hugging Face model page are its safetensors' count ("Model size").
PUBLISHED: dict[str, tuple[float, float | None, float, str]] = {
    "llama2-7b": (6.74e9, None, 0.01, f"{HF}/meta-llama/Llama-2-7b-hf"),
    "llama2-13b": (13.02e9, None, 0.01, f"{HF}/meta-llama/Llama-2-13b-hf"),
    "llama2-70b": (68.98e9, None, 0.01, f"{HF}/meta-llama/Llama-2-70b-hf"),
    "llama3-8b": (8.03e9, None, 0.01, f"{HF}/meta-llama/Meta-Llama-3-8B"),
    "llama3-70b": (70.55e9, None, 0.01, f"{HF}/meta-llama/Meta-Llama-3-70B"),
    "llama3.1-8b": (8.03e9, None, 0.01, f"{HF}/meta-llama/Llama-3.1-8B"),
    "llama3.1-70b": (70.55e9, None, 0.01, f"{HF}/meta-llama/Llama-3.1-70B"),
    "llama3.1-405b": (405.85e9, None, 0.01, f"{HF}/meta-llama/Llama-3.1-405B"),
    "llama3.3-70b": (70.55e9, None, 0.01, f"{HF}/meta-llama/Llama-3.3-70B-Instruct"),
    # Meta's 109B and 400B include the vision encoder and projector (~0.87B with the
    # published vision_config); the presets are the text model (107.77B, 400.71B), so the
    # Scout total is 1.1 % under: 1.5 % tolerance
    "llama4-scout": (109e9, 17e9, 0.015,
                     "https://ai.meta.com/blog/llama-4-multimodal-intelligence/"),
    "llama4-maverick": (400e9, 17e9, 0.015,
                        "https://ai.meta.com/blog/llama-4-multimodal-intelligence/"),
    "qwen3-8b": (8.2e9, None, 0.01, f"{HF}/Qwen/Qwen3-8B"),
    "qwen3-32b": (32.8e9, None, 0.01, f"{HF}/Qwen/Qwen3-32B"),
    "qwen3-30b-a3b": (30.5e9, 3.3e9, 0.02, f"{HF}/Qwen/Qwen3-30B-A3B"),  # 3.35B: 1.6 %
    "qwen3-235b-a22b": (235e9, 22e9, 0.01, f"{HF}/Qwen/Qwen3-235B-A22B"),
    "mistral-7b": (7.24e9, None, 0.01, f"{HF}/mistralai/Mistral-7B-v0.1"),
    "mixtral-8x7b": (46.7e9, 12.9e9, 0.01, "https://mistral.ai/news/mixtral-of-experts/"),
    # the paper's 37B is rounded: 37.55B with the embedding table, 36.63B without
    "deepseek-v3": (671e9, 37e9, 0.02, "https://arxiv.org/abs/2412.19437"),
    "bert-base": (110e6, None, 0.01, "https://arxiv.org/abs/1810.04805"),
    "bert-large": (335e6, None, 0.01, f"{HF}/google-bert/bert-large-uncased"),
    "gpt2": (124e6, None, 0.01, f"{HF}/openai-community/gpt2"),
    # GPT-3 Table 2.1 names the models by rounded counts: 350M is 355.6M, 2.7B is 2.65B
    "gpt3-125m": (125e6, None, 0.02, "https://arxiv.org/abs/2005.14165"),
    "gpt3-350m": (350e6, None, 0.02, "https://arxiv.org/abs/2005.14165"),
    "gpt3-760m": (760e6, None, 0.02, "https://arxiv.org/abs/2005.14165"),
    "gpt3-1.3b": (1.3e9, None, 0.02, "https://arxiv.org/abs/2005.14165"),
    "gpt3-2.7b": (2.7e9, None, 0.02, "https://arxiv.org/abs/2005.14165"),
    "gpt3-6.7b": (6.7e9, None, 0.02, "https://arxiv.org/abs/2005.14165"),
    "gpt3-13b": (13.0e9, None, 0.02, "https://arxiv.org/abs/2005.14165"),
    "gpt3-175b": (175e9, None, 0.02, "https://arxiv.org/abs/2005.14165"),
    "megatron-gpt-22b": (22e9, None, 0.01, "https://arxiv.org/abs/2205.05198"),
    "megatron-gpt-175b": (175e9, None, 0.01, "https://arxiv.org/abs/2205.05198"),
    "megatron-gpt-530b": (530e9, None, 0.01, "https://arxiv.org/abs/2205.05198"),
    "megatron-gpt-1t": (1e12, None, 0.01, "https://arxiv.org/abs/2205.05198"),
}

# OpenAI's model card counts active parameters without the embedding table (its table:
# MLP + attention + unembedding), https://openai.com/index/introducing-gpt-oss/
GPT_OSS = {"gpt-oss-20b": (20.91e9, 3.61e9), "gpt-oss-120b": (116.83e9, 5.13e9)}

# what transformers 5.25 counts for these configs (sum of numel over parameters; checked
# against it in test_models_hf_import.py when transformers is installed)
EXACT = {
    "llama3.1-405b": 405_853_388_800,
    "mistral-7b": 7_241_732_096,
    "mixtral-8x7b": 46_702_792_704,
    "qwen3-8b": 8_190_735_360,
    "qwen3-32b": 32_762_123_264,
    "qwen3-30b-a3b": 30_532_122_624,
    "qwen3-235b-a22b": 235_093_634_560,
    "gpt-oss-20b": 20_914_757_184,
    "gpt-oss-120b": 116_829_156_672,
    "deepseek-v3": 671_026_404_352,
    "llama4-scout": 107_769_861_120,
    "llama4-maverick": 400_711_848_960,
}


def test_zoo_names() -> None:
    assert set(PRESETS) == ZOO_NAMES
    assert set(PUBLISHED) | set(GPT_OSS) == ZOO_NAMES - {"tiny-llama", "tiny-gpt2",
                                                         "tiny-bert"}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_zoo_counts_match_the_published_ones(name: str) -> None:
    total, active, tolerance, _source = PUBLISHED[name]
    config = PRESETS[name]
    assert config.num_parameters() == pytest.approx(total, rel=tolerance)
    if active is None:
        assert config.moe is None
        assert config.num_active_parameters() == config.num_parameters()
    else:
        assert config.num_active_parameters() == pytest.approx(active, rel=tolerance)
        assert config.num_active_parameters() < config.num_parameters()


@pytest.mark.parametrize("name", sorted(GPT_OSS))
def test_zoo_gpt_oss_counts_match_the_model_card(name: str) -> None:
    total, active = GPT_OSS[name]
    config = PRESETS[name]
    assert config.num_parameters() == pytest.approx(total, rel=0.001)
    assert config.num_active_parameters(embedding=False) == pytest.approx(active, rel=0.002)
    # with the embedding table (a lookup of one row) the count is 0.58B higher
    table = config.vocab_size * config.hidden_size
    assert config.num_active_parameters() - config.num_active_parameters(embedding=False) \
        == table


@pytest.mark.parametrize("name", sorted(EXACT))
def test_zoo_exact_counts(name: str) -> None:
    assert PRESETS[name].num_parameters() == EXACT[name]


def test_zoo_active_counts_exact() -> None:
    # by hand: attention + 2 of 8 experts + router + norms per layer, embeddings and head
    assert PRESETS["mixtral-8x7b"].num_active_parameters() == 12_879_925_248
    # the exact total less 58 MoE layers x 248 idle experts x 3 x 7168 x 2048
    assert PRESETS["deepseek-v3"].num_active_parameters() == \
        671_026_404_352 - 58 * 248 * 3 * 7168 * 2048
    # 24 MoE layers (every second) x 127 idle experts
    assert PRESETS["llama4-maverick"].num_active_parameters() == \
        400_711_848_960 - 24 * 127 * 3 * 5120 * 8192


def test_zoo_llama3_generations_share_shapes() -> None:
    # 3.1 and 3.3 change the context (rope_scaling), not a weight
    assert PRESETS["llama3.1-70b"] == PRESETS["llama3.3-70b"]
    assert PRESETS["llama3.1-8b"].num_parameters() == PRESETS["llama3-8b"].num_parameters()
    assert PRESETS["llama3.1-8b"].max_position_embeddings == 131072


def test_zoo_gpt3_and_megatron_rows() -> None:
    # GPT-3 Table 2.1 and Korthikanti et al. Table 3: (layers, d_model, heads, d_head)
    rows = {"gpt3-125m": (12, 768, 12, 64), "gpt3-760m": (24, 1536, 16, 96),
            "gpt3-1.3b": (24, 2048, 16, 128), "gpt3-13b": (40, 5140, 40, 128),
            "gpt3-175b": (96, 12288, 96, 128), "megatron-gpt-530b": (105, 20480, 128, 160),
            "megatron-gpt-1t": (128, 25600, 160, 160)}
    for name, (layers, hidden, heads, head_dim) in rows.items():
        c = PRESETS[name]
        assert (c.num_layers, c.hidden_size, c.num_heads, c.head_dim) == \
            (layers, hidden, heads, head_dim), name
        assert c.intermediate_size == 4 * hidden and c.max_position_embeddings == 2048
        assert c.vocab_size == (51200 if name.startswith("megatron") else 50257)


def test_zoo_buildable_presets() -> None:
    refused = {"llama4-scout": "moe", "llama4-maverick": "moe", "qwen3-30b-a3b": "moe",
               "qwen3-235b-a22b": "moe", "gpt-oss-20b": "moe", "gpt-oss-120b": "moe",
               "mixtral-8x7b": "moe", "deepseek-v3": "moe", "mistral-7b": "sliding_window",
               "gpt3-13b": "attention_head_dim"}
    for name, config in PRESETS.items():
        if name in refused:
            with pytest.raises(ModelConfigError, match=f"^{refused[name]}:"):
                check_buildable(config)
        else:
            check_buildable(config)  # Qwen3 dense included: qk_norm, head_dim 128


def test_zoo_qwen3_8b_builds_on_meta() -> None:
    pytest.importorskip("torch")
    model = build_model(PRESETS["qwen3-8b"], meta=True)
    assert sum(p.numel() for p in model.parameters()) == PRESETS["qwen3-8b"].num_parameters()


def test_zoo_every_preset_cites_its_source() -> None:
    # each preset is preceded by a comment with its URL (a group of one-line presets shares
    # the comment above the group); the tiny ones say they have none
    lines = Path(zoo.__file__).read_text().splitlines()
    assignment = re.compile(r"^([A-Z][A-Z0-9_]*) = ")
    one_line = re.compile(r"^[A-Z][A-Z0-9_]* = _gpt\(.*\)$")
    cited = set()
    for i, line in enumerate(lines):
        match = assignment.match(line)
        if not match or match.group(1) == "PRESETS":
            continue
        j = i - 1
        while j >= 0 and one_line.match(lines[j]):
            j -= 1
        comment = []
        while j >= 0 and lines[j].startswith("#"):
            comment.append(lines[j])
            j -= 1
        text = " ".join(comment)
        if "https://" in text or (match.group(1).startswith("TINY_") and "source: none" in
                                  " ".join(lines[max(0, i - 12):i])):
            cited.add(match.group(1))
    named = {name for name in dir(zoo) if name.isupper() and name != "PRESETS"
             and not name.startswith("_")}
    assert named - cited == set()
