"""Shared test harness: run an instruction body on SBUF tiles loaded from host arrays."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki


def tiles_kernel(body: Callable[..., None], outs: Sequence[tuple[tuple[int, ...], object]],
                 pass_lists: bool) -> Callable[..., object]:
    """A kernel that DMAs each input into SBUF, allocates the `outs` SBUF tiles, runs the
    body, and DMAs every output tile back to HBM (returned as a tuple).

    With `pass_lists` the body is called as body(out_tiles, in_tiles); otherwise as
    body(out_tile, *in_tiles) for a single output."""

    def kernel(*arrays):
        ins = []
        for x in arrays:
            t = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
            nisa.dma_copy(t, x)
            ins.append(t)
        tiles = [nl.ndarray(shape, dtype, buffer=nl.sbuf) for shape, dtype in outs]
        if pass_lists:
            body(tiles, ins)
        else:
            body(tiles[0], *ins)
        results = []
        for t in tiles:
            o = nl.ndarray(t.shape, t.dtype, buffer=nl.shared_hbm)
            nisa.dma_copy(o, t)
            results.append(o)
        return tuple(results)

    return kernel


def run_single(body: Callable[..., None], inputs: Sequence[np.ndarray],
               out_shape: tuple[int, ...], out_dtype: object = np.float32,
               chip: str = "trn2") -> np.ndarray:
    """body(dst, *tiles) on SBUF copies of `inputs`; returns dst's values."""
    kernel = tiles_kernel(body, [(out_shape, out_dtype)], pass_lists=False)
    return nki.simulate(kernel, chip=chip)(*inputs)[0]


def trace_tiles(body: Callable[..., None], *arrays: np.ndarray,
                out: Sequence[tuple[tuple[int, ...], object]], chip: str | None = None
                ) -> nki.TraceResult:
    """body(out_tiles, in_tiles) on SBUF copies of `arrays`; returns the trace."""
    return nki.trace(tiles_kernel(body, out, pass_lists=True), chip=chip)(*arrays)


def call_in_kernel(fn: Callable[[], None], chip: str = "trn2",
                   symbolic: bool = True) -> nki.TraceResult:
    """Trace a kernel whose body is `fn()` (it makes its own tiles) on `chip`."""
    @nki.jit
    def kernel(x):
        fn()
        return x

    return nki.trace(kernel, symbolic=symbolic, chip=chip)(np.zeros((1, 1), np.float32))
