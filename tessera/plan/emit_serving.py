"""Write a planned deployment as the serving stack's own configuration.

vLLM (with the Neuron plugin on Neuron instances): `vllm.json` with the engine arguments
(`tensor_parallel_size`, `max_num_seqs`, `max_model_len`, `block_size`,
`max_num_batched_tokens`) and `additional_config.neuron_config` holding the bucket lists,
plus `serve.sh`, the `vllm serve` command line. NxD Inference: `nxdi.json` with its
`NeuronConfig` fields (`tp_degree`, `batch_size`, `seq_len`, `max_context_length`,
`enable_bucketing`, `context_encoding_buckets`, `token_generation_buckets`).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from tessera.plan.errors import PlanError
from tessera.plan.infer import InferEstimate, InferWorkload
from tessera.plan.serving import ServingStack


def vllm_config(e: InferEstimate) -> dict[str, object]:
    """vLLM engine arguments of the deployment."""
    s = e.serving
    neuron: dict[str, object] = {
        "num_batched_tokens_buckets": list(s.prefill_ladder),
        "num_seqs_buckets": list(s.seq_ladder),
    }
    if s.context_buckets:
        neuron["decode_context_length_buckets"] = list(s.context_ladder)
    if s.kv_fp8:
        neuron["kv_cache_dtype"] = "fp8"
    cfg: dict[str, object] = {
        "tensor_parallel_size": s.tp, "max_num_seqs": s.max_num_seqs,
        "max_model_len": s.max_model_len, "block_size": s.block_size,
        "max_num_batched_tokens": s.max_num_batched_tokens,
    }
    if s.static_shapes:
        cfg["additional_config"] = {"neuron_config": neuron}
    return cfg


def nxdi_config(e: InferEstimate) -> dict[str, object]:
    """NxD Inference NeuronConfig fields of the deployment."""
    s = e.serving
    return {"tp_degree": s.tp, "batch_size": s.max_num_seqs, "seq_len": s.max_model_len,
            "max_context_length": s.prefill_ladder[-1], "enable_bucketing": True,
            "context_encoding_buckets": list(s.prefill_ladder),
            "token_generation_buckets": list(s.context_ladder),
            "logical_nc_config": s.lnc,
            "on_device_sampling": s.on_device_sampling,
            "kv_cache_quant": s.kv_fp8}


def serve_command(e: InferEstimate, model_path: str) -> str:
    """The `vllm serve` command line of the deployment."""
    cfg = vllm_config(e)
    args = ["vllm", "serve", model_path]
    for key in ("tensor_parallel_size", "max_num_seqs", "max_model_len", "block_size",
                "max_num_batched_tokens"):
        args += [f"--{key.replace('_', '-')}", str(cfg[key])]
    if "additional_config" in cfg:
        args += ["--additional-config", json.dumps(cfg["additional_config"])]
    return " ".join(shlex.quote(a) for a in args)


def write_serving(e: InferEstimate, w: InferWorkload, directory: str | Path) -> list[Path]:
    """Write the deployment's configuration (and, for vLLM, serve.sh) into `directory`."""
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if e.serving.stack is ServingStack.NXDI:
            path = out / "nxdi.json"
            path.write_text(json.dumps(nxdi_config(e), indent=2) + "\n")
            return [path]
        conf, script = out / "vllm.json", out / "serve.sh"
        conf.write_text(json.dumps(vllm_config(e), indent=2) + "\n")
        script.write_text("#!/bin/sh\n# written by `tessera plan infer --emit`\n"
                          + serve_command(e, w.model_name) + "\n")
        script.chmod(0o755)
        return [conf, script]
    except OSError as err:
        raise PlanError(f"--emit {directory}: cannot write ({err.strerror})") from None
