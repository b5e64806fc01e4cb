"""Static shapes and buckets: one compiled graph per sequence length bucket.

The vendor's stack compiles one graph per input shape and pads each request up to the
next compiled length (its inference library's "buckets"). `tessera.compile(model,
example_inputs, buckets=[128, 256, 512])` does the same: the bucketed dimension is dim 1
of every input (the sequence: token ids [B, S], an attention mask [B, S]); one graph is
compiled per bucket from the example inputs padded or cut to that length; a call pads its
inputs with zeros to the smallest bucket that holds them, runs that graph and cuts dim 1 of
every output that has the bucket's length back to the call's length.

Padding at the end leaves a causal decoder's real positions unchanged; an encoder needs
its attention mask among the inputs (padded with 0, so the padding is masked). The padded
positions cost time: `padding_waste(length)` says how much of the bucket's time was spent
on them (the share of positions that are padding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from tessera.compiler.api import CompiledModel
from tessera.compiler.errors import CompileError
from tessera.compiler.profile import ModelProfile


def pad_to(t: torch.Tensor, length: int) -> torch.Tensor:
    """`t` with dim 1 cut or zero-padded to `length`."""
    if t.dim() < 2:
        raise CompileError(f"bucketed inputs need a sequence dimension (dim 1); got shape "
                           f"{list(t.shape)}")
    if t.shape[1] >= length:
        return t[:, :length]
    pad = torch.zeros((t.shape[0], length - t.shape[1], *t.shape[2:]), dtype=t.dtype,
                      device=t.device)
    return torch.cat([t, pad], dim=1)


class BucketedModel:
    """Compiled graphs by bucket length; call it like the model."""

    def __init__(self, buckets: Sequence[int],
                 compile_one: Callable[[int], CompiledModel]) -> None:
        sizes = sorted({int(b) for b in buckets})
        if not sizes or sizes[0] < 1:
            raise CompileError(f"buckets must be positive lengths, got {list(buckets)}")
        self.buckets = tuple(sizes)
        self.models = {b: compile_one(b) for b in self.buckets}

    def bucket_for(self, length: int) -> int:
        """The smallest bucket that holds `length` positions."""
        for b in self.buckets:
            if length <= b:
                return b
        raise CompileError(f"length {length} is longer than the largest bucket "
                           f"({self.buckets[-1]}); compile a larger bucket")

    def profile(self, length: int) -> ModelProfile:
        """The profile of the graph a call of `length` positions runs."""
        return self.models[self.bucket_for(length)].profile

    def padding_waste(self, length: int) -> float:
        """The share of the bucket's positions (and so of its time) that padding takes."""
        b = self.bucket_for(length)
        return (b - length) / b

    def __call__(self, *inputs: torch.Tensor) -> object:
        if not inputs:
            raise CompileError("the bucketed model takes its inputs as tensors")
        length = int(inputs[0].shape[1]) if inputs[0].dim() >= 2 else 0
        b = self.bucket_for(length)
        out = self.models[b](*(pad_to(t, b) for t in inputs))

        def cut(t: torch.Tensor) -> torch.Tensor:
            return t[:, :length] if t.dim() >= 2 and t.shape[1] == b else t

        return tuple(cut(t) for t in out) if isinstance(out, tuple) else cut(out)

    def summary(self) -> str:
        """One line per bucket: its predicted time."""
        return "\n".join(f"bucket {b}: {m.profile.total_s * 1e3:.3f} ms"
                         for b, m in self.models.items())
