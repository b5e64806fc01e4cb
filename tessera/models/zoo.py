"""Presets: the configs of models people train and serve, each with its source (`PRESETS`).

Values are copied from each model's published config.json (Hugging Face) or its paper;
`rope_scaling` (Llama-3.1's, gpt-oss's YaRN, ...) is left out: it changes no shape or
parameter count. Published parameter counts are checked in
tests/models/test_models_zoo.py.
"""

from __future__ import annotations

from tessera.models.model_config import ModelConfig
from tessera.models.parts import Activation, MlaConfig, ModelFamily, MoeConfig, RouterKind

_LLAMA, _SILU = ModelFamily.LLAMA, Activation.SILU

# --- Llama 2 and 3 (dense, GQA from Llama-2-70B on) ---
# source: https://huggingface.co/meta-llama/Llama-2-7b-hf/blob/main/config.json
LLAMA2_7B = ModelConfig(
    family=_LLAMA, vocab_size=32000, hidden_size=4096, num_layers=32, num_heads=32,
    num_kv_heads=32, intermediate_size=11008, max_position_embeddings=4096, norm_eps=1e-5,
    activation=_SILU, rope_theta=10000.0)
# source: https://huggingface.co/meta-llama/Llama-2-13b-hf/blob/main/config.json
LLAMA2_13B = ModelConfig(
    family=_LLAMA, vocab_size=32000, hidden_size=5120, num_layers=40, num_heads=40,
    num_kv_heads=40, intermediate_size=13824, max_position_embeddings=4096, norm_eps=1e-5,
    activation=_SILU, rope_theta=10000.0)
# source: https://huggingface.co/meta-llama/Llama-2-70b-hf/blob/main/config.json
LLAMA2_70B = ModelConfig(
    family=_LLAMA, vocab_size=32000, hidden_size=8192, num_layers=80, num_heads=64,
    num_kv_heads=8, intermediate_size=28672, max_position_embeddings=4096, norm_eps=1e-5,
    activation=_SILU, rope_theta=10000.0)
# source: https://huggingface.co/meta-llama/Meta-Llama-3-8B/blob/main/config.json
LLAMA3_8B = ModelConfig(
    family=_LLAMA, vocab_size=128256, hidden_size=4096, num_layers=32, num_heads=32,
    num_kv_heads=8, intermediate_size=14336, max_position_embeddings=8192, norm_eps=1e-5,
    activation=_SILU, rope_theta=500000.0)
# source: https://huggingface.co/meta-llama/Meta-Llama-3-70B/blob/main/config.json
LLAMA3_70B = ModelConfig(
    family=_LLAMA, vocab_size=128256, hidden_size=8192, num_layers=80, num_heads=64,
    num_kv_heads=8, intermediate_size=28672, max_position_embeddings=8192, norm_eps=1e-5,
    activation=_SILU, rope_theta=500000.0)
# source: https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json
# (Llama-3 8B with a 128k context through rope_scaling "llama3")
LLAMA3_1_8B = ModelConfig(
    family=_LLAMA, vocab_size=128256, hidden_size=4096, num_layers=32, num_heads=32,
    num_kv_heads=8, intermediate_size=14336, max_position_embeddings=131072, norm_eps=1e-5,
    activation=_SILU, rope_theta=500000.0)
# source: https://huggingface.co/meta-llama/Llama-3.1-70B/blob/main/config.json
LLAMA3_1_70B = ModelConfig(
    family=_LLAMA, vocab_size=128256, hidden_size=8192, num_layers=80, num_heads=64,
    num_kv_heads=8, intermediate_size=28672, max_position_embeddings=131072, norm_eps=1e-5,
    activation=_SILU, rope_theta=500000.0)
# source: https://huggingface.co/meta-llama/Llama-3.1-405B/blob/main/config.json
LLAMA3_1_405B = ModelConfig(
    family=_LLAMA, vocab_size=128256, hidden_size=16384, num_layers=126, num_heads=128,
    num_kv_heads=8, intermediate_size=53248, max_position_embeddings=131072, norm_eps=1e-5,
    activation=_SILU, rope_theta=500000.0)
# source: https://huggingface.co/meta-llama/Llama-3.3-70B-Instruct/blob/main/config.json
# (the shapes of Llama-3.1-70B)
LLAMA3_3_70B = ModelConfig(
    family=_LLAMA, vocab_size=128256, hidden_size=8192, num_layers=80, num_heads=64,
    num_kv_heads=8, intermediate_size=28672, max_position_embeddings=131072, norm_eps=1e-5,
    activation=_SILU, rope_theta=500000.0)

# --- Llama 4 (text model of Llama4ForConditionalGeneration: its "text_config") ---
# Chunked attention (8192) on three layers of four; every fourth is global without RoPE.
# One shared expert per MoE layer; dense layers are intermediate_size_mlp 16384 wide.
# use_qk_norm (Scout) is a weightless L2 norm: no field, no parameters.
# source: https://huggingface.co/meta-llama/Llama-4-Scout-17B-16E/blob/main/config.json
LLAMA4_SCOUT = ModelConfig(
    family=_LLAMA, vocab_size=202048, hidden_size=5120, num_layers=48, num_heads=40,
    num_kv_heads=8, intermediate_size=16384, max_position_embeddings=10485760, norm_eps=1e-5,
    activation=_SILU, rope_theta=500000.0, attention_chunk_size=8192, global_attention_every=4,
    moe=MoeConfig(num_experts=16, experts_per_token=1, expert_intermediate_size=8192,
                  num_shared_experts=1, shared_expert_intermediate_size=8192,
                  router=RouterKind.SIGMOID))
# source: https://huggingface.co/meta-llama/Llama-4-Maverick-17B-128E/blob/main/config.json
# (interleave_moe_layer_step 2: layers 1, 3, 5, ... are MoE)
LLAMA4_MAVERICK = ModelConfig(
    family=_LLAMA, vocab_size=202048, hidden_size=5120, num_layers=48, num_heads=40,
    num_kv_heads=8, intermediate_size=16384, max_position_embeddings=1048576, norm_eps=1e-5,
    activation=_SILU, rope_theta=500000.0, attention_chunk_size=8192, global_attention_every=4,
    moe=MoeConfig(num_experts=128, experts_per_token=1, expert_intermediate_size=8192,
                  num_shared_experts=1, shared_expert_intermediate_size=8192, layer_step=2,
                  router=RouterKind.SIGMOID))

# --- Qwen3 (q/k RMSNorm per head; explicit head_dim 128) ---
# source: https://huggingface.co/Qwen/Qwen3-8B/blob/main/config.json (head_dim 128 = 4096/32)
QWEN3_8B = ModelConfig(
    family=_LLAMA, vocab_size=151936, hidden_size=4096, num_layers=36, num_heads=32,
    num_kv_heads=8, intermediate_size=12288, max_position_embeddings=40960, norm_eps=1e-6,
    activation=_SILU, rope_theta=1000000.0, qk_norm=True)
# source: https://huggingface.co/Qwen/Qwen3-32B/blob/main/config.json
QWEN3_32B = ModelConfig(
    family=_LLAMA, vocab_size=151936, hidden_size=5120, num_layers=64, num_heads=64,
    num_kv_heads=8, intermediate_size=25600, max_position_embeddings=40960, norm_eps=1e-6,
    activation=_SILU, rope_theta=1000000.0, qk_norm=True, attention_head_dim=128)
# source: https://huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/config.json
# (intermediate_size 6144 is unused: every layer is MoE, decoder_sparse_step 1)
QWEN3_30B_A3B = ModelConfig(
    family=_LLAMA, vocab_size=151936, hidden_size=2048, num_layers=48, num_heads=32,
    num_kv_heads=4, intermediate_size=6144, max_position_embeddings=40960, norm_eps=1e-6,
    activation=_SILU, rope_theta=1000000.0, qk_norm=True, attention_head_dim=128,
    moe=MoeConfig(num_experts=128, experts_per_token=8, expert_intermediate_size=768))
# source: https://huggingface.co/Qwen/Qwen3-235B-A22B/blob/main/config.json
QWEN3_235B_A22B = ModelConfig(
    family=_LLAMA, vocab_size=151936, hidden_size=4096, num_layers=94, num_heads=64,
    num_kv_heads=4, intermediate_size=12288, max_position_embeddings=40960, norm_eps=1e-6,
    activation=_SILU, rope_theta=1000000.0, qk_norm=True, attention_head_dim=128,
    moe=MoeConfig(num_experts=128, experts_per_token=8, expert_intermediate_size=1536))

# --- gpt-oss (biased attention with sinks; sliding window 128 on even layers) ---
# source: https://huggingface.co/openai/gpt-oss-20b/blob/main/config.json
GPT_OSS_20B = ModelConfig(
    family=_LLAMA, vocab_size=201088, hidden_size=2880, num_layers=24, num_heads=64,
    num_kv_heads=8, intermediate_size=2880, max_position_embeddings=131072, norm_eps=1e-5,
    activation=_SILU, rope_theta=150000.0, attention_head_dim=64, attention_bias=True,
    attention_out_bias=True, attention_sinks=True, mlp_bias=True, sliding_window=128,
    global_attention_every=2,
    moe=MoeConfig(num_experts=32, experts_per_token=4, expert_intermediate_size=2880,
                  router_bias=True))
# source: https://huggingface.co/openai/gpt-oss-120b/blob/main/config.json
GPT_OSS_120B = ModelConfig(
    family=_LLAMA, vocab_size=201088, hidden_size=2880, num_layers=36, num_heads=64,
    num_kv_heads=8, intermediate_size=2880, max_position_embeddings=131072, norm_eps=1e-5,
    activation=_SILU, rope_theta=150000.0, attention_head_dim=64, attention_bias=True,
    attention_out_bias=True, attention_sinks=True, mlp_bias=True, sliding_window=128,
    global_attention_every=2,
    moe=MoeConfig(num_experts=128, experts_per_token=4, expert_intermediate_size=2880,
                  router_bias=True))

# --- Mistral ---
# source: https://huggingface.co/mistralai/Mistral-7B-v0.1/blob/main/config.json
MISTRAL_7B = ModelConfig(
    family=_LLAMA, vocab_size=32000, hidden_size=4096, num_layers=32, num_heads=32,
    num_kv_heads=8, intermediate_size=14336, max_position_embeddings=32768, norm_eps=1e-5,
    activation=_SILU, rope_theta=10000.0, sliding_window=4096)
# source: https://huggingface.co/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json
# (intermediate_size is each expert's width; every layer is MoE)
MIXTRAL_8X7B = ModelConfig(
    family=_LLAMA, vocab_size=32000, hidden_size=4096, num_layers=32, num_heads=32,
    num_kv_heads=8, intermediate_size=14336, max_position_embeddings=32768, norm_eps=1e-5,
    activation=_SILU, rope_theta=1000000.0,
    moe=MoeConfig(num_experts=8, experts_per_token=2, expert_intermediate_size=14336))

# --- DeepSeek-V3 (MLA; 3 dense layers, then 256 routed + 1 shared experts, 8 groups) ---
# The multi-token-prediction layer (num_nextn_predict_layers 1, ~14B) is left out, as in
# the 671B the paper counts; the router's score-correction bias is a buffer.
# source: https://huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json
DEEPSEEK_V3 = ModelConfig(
    family=_LLAMA, vocab_size=129280, hidden_size=7168, num_layers=61, num_heads=128,
    num_kv_heads=128, intermediate_size=18432, max_position_embeddings=163840, norm_eps=1e-6,
    activation=_SILU, rope_theta=10000.0,
    mla=MlaConfig(q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128,
                  qk_rope_head_dim=64, v_head_dim=128),
    moe=MoeConfig(num_experts=256, experts_per_token=8, expert_intermediate_size=2048,
                  num_shared_experts=1, shared_expert_intermediate_size=2048,
                  first_dense_layers=3, router=RouterKind.SIGMOID, expert_groups=8,
                  expert_groups_per_token=4))

# --- BERT and GPT-2 ---
# source: https://huggingface.co/google-bert/bert-base-uncased/blob/main/config.json
BERT_BASE = ModelConfig(
    family=ModelFamily.BERT, vocab_size=30522, hidden_size=768, num_layers=12, num_heads=12,
    num_kv_heads=12, intermediate_size=3072, max_position_embeddings=512, norm_eps=1e-12,
    activation=Activation.GELU, type_vocab_size=2)
# source: https://huggingface.co/google-bert/bert-large-uncased/blob/main/config.json
BERT_LARGE = ModelConfig(
    family=ModelFamily.BERT, vocab_size=30522, hidden_size=1024, num_layers=24, num_heads=16,
    num_kv_heads=16, intermediate_size=4096, max_position_embeddings=512, norm_eps=1e-12,
    activation=Activation.GELU, type_vocab_size=2)
# source: https://huggingface.co/openai-community/gpt2/blob/main/config.json
# (n_inner is null there: 4 * n_embd; activation_function "gelu_new" is the tanh form)
GPT2_SMALL = ModelConfig(
    family=ModelFamily.GPT2, vocab_size=50257, hidden_size=768, num_layers=12, num_heads=12,
    num_kv_heads=12, intermediate_size=3072, max_position_embeddings=1024, norm_eps=1e-5,
    activation=Activation.GELU_TANH, tie_word_embeddings=True)


def _gpt(vocab: int, layers: int, hidden: int, heads: int, head_dim: int = 0) -> ModelConfig:
    """A GPT-2-style decoder with a 2048 context and d_ff = 4 d_model (GPT-3, Megatron)."""
    return ModelConfig(
        family=ModelFamily.GPT2, vocab_size=vocab, hidden_size=hidden, num_layers=layers,
        num_heads=heads, num_kv_heads=heads, intermediate_size=4 * hidden,
        max_position_embeddings=2048, norm_eps=1e-5, activation=Activation.GELU_TANH,
        tie_word_embeddings=True, attention_head_dim=head_dim)


# --- GPT-3: Brown et al. 2020, Table 2.1, https://arxiv.org/abs/2005.14165 ---
# GPT-2's vocabulary of 50257 and tied embeddings. Two rows do not multiply out: XL lists
# 24 heads of 128 for d_model 2048 (we keep d_head 128: 16 heads, which gives its 1.3B);
# 13B lists d_model 5140 with 40 heads of 128 (kept as printed: attention 5120 wide).
GPT3_125M = _gpt(50257, 12, 768, 12)
GPT3_350M = _gpt(50257, 24, 1024, 16)
GPT3_760M = _gpt(50257, 24, 1536, 16)
GPT3_1_3B = _gpt(50257, 24, 2048, 16)
GPT3_2_7B = _gpt(50257, 32, 2560, 32)
GPT3_6_7B = _gpt(50257, 32, 4096, 32)
GPT3_13B = _gpt(50257, 40, 5140, 40, head_dim=128)
GPT3_175B = _gpt(50257, 96, 12288, 96)

# --- Megatron GPT: Korthikanti et al. 2022, Table 3, https://arxiv.org/abs/2205.05198 ---
# vocabulary 51200 (GPT-2's, padded), sequence 2048, ffn 4h; Megatron's fused bias-GeLU is
# the tanh form
MEGATRON_GPT_22B = _gpt(51200, 48, 6144, 64)
MEGATRON_GPT_175B = _gpt(51200, 96, 12288, 96)
MEGATRON_GPT_530B = _gpt(51200, 105, 20480, 128)
MEGATRON_GPT_1T = _gpt(51200, 128, 25600, 160)

# source: none; tiny shapes for tests (milliseconds on a CPU), GQA kept in the Llama one
TINY_LLAMA = ModelConfig(
    family=_LLAMA, vocab_size=256, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
    intermediate_size=128, max_position_embeddings=128, norm_eps=1e-5, activation=_SILU,
    rope_theta=10000.0)
TINY_GPT2 = ModelConfig(
    family=ModelFamily.GPT2, vocab_size=256, hidden_size=64, num_layers=2, num_heads=4,
    num_kv_heads=4, intermediate_size=256, max_position_embeddings=128, norm_eps=1e-5,
    activation=Activation.GELU_TANH, tie_word_embeddings=True)
TINY_BERT = ModelConfig(
    family=ModelFamily.BERT, vocab_size=256, hidden_size=64, num_layers=2, num_heads=4,
    num_kv_heads=4, intermediate_size=256, max_position_embeddings=128, norm_eps=1e-12,
    activation=Activation.GELU, type_vocab_size=2)

PRESETS: dict[str, ModelConfig] = {
    "llama2-7b": LLAMA2_7B,
    "llama2-13b": LLAMA2_13B,
    "llama2-70b": LLAMA2_70B,
    "llama3-8b": LLAMA3_8B,
    "llama3-70b": LLAMA3_70B,
    "llama3.1-8b": LLAMA3_1_8B,
    "llama3.1-70b": LLAMA3_1_70B,
    "llama3.1-405b": LLAMA3_1_405B,
    "llama3.3-70b": LLAMA3_3_70B,
    "llama4-scout": LLAMA4_SCOUT,
    "llama4-maverick": LLAMA4_MAVERICK,
    "qwen3-8b": QWEN3_8B,
    "qwen3-32b": QWEN3_32B,
    "qwen3-30b-a3b": QWEN3_30B_A3B,
    "qwen3-235b-a22b": QWEN3_235B_A22B,
    "gpt-oss-20b": GPT_OSS_20B,
    "gpt-oss-120b": GPT_OSS_120B,
    "mistral-7b": MISTRAL_7B,
    "mixtral-8x7b": MIXTRAL_8X7B,
    "deepseek-v3": DEEPSEEK_V3,
    "bert-base": BERT_BASE,
    "bert-large": BERT_LARGE,
    "gpt2": GPT2_SMALL,
    "gpt3-125m": GPT3_125M,
    "gpt3-350m": GPT3_350M,
    "gpt3-760m": GPT3_760M,
    "gpt3-1.3b": GPT3_1_3B,
    "gpt3-2.7b": GPT3_2_7B,
    "gpt3-6.7b": GPT3_6_7B,
    "gpt3-13b": GPT3_13B,
    "gpt3-175b": GPT3_175B,
    "megatron-gpt-22b": MEGATRON_GPT_22B,
    "megatron-gpt-175b": MEGATRON_GPT_175B,
    "megatron-gpt-530b": MEGATRON_GPT_530B,
    "megatron-gpt-1t": MEGATRON_GPT_1T,
    "tiny-llama": TINY_LLAMA,
    "tiny-gpt2": TINY_GPT2,
    "tiny-bert": TINY_BERT,
}
