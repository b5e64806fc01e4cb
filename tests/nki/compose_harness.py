"""Shared helpers of the nl-composition tests: run an nl call on tiles loaded from host
arrays, list the instructions it recorded, expect an error at the caller's line."""

from __future__ import annotations

from collections.abc import Callable

import ml_dtypes
import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.nki.errors import NkiError

RNG = np.random.default_rng(18)
BF16 = ml_dtypes.bfloat16
Op = nki.Opcode


def randn(*shape: int, dtype: object = np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def evaluate(body: Callable[..., object], *arrays: np.ndarray, chip: str = "trn2",
             psum: tuple[int, ...] = ()) -> tuple[np.ndarray, nki.TraceResult]:
    """Load each array into SBUF (PSUM for the indices in `psum`), call body(*tiles) and
    return the result tile's values and the trace."""
    def kernel(*xs):
        tiles = []
        for i, x in enumerate(xs):
            t = nl.load(x)
            if i in psum:
                p = nl.ndarray(t.shape, t.dtype, buffer=nl.psum)
                nisa.tensor_copy(p, t)
                t = p
            tiles.append(t)
        res = body(*tiles)
        if res.buffer is nl.psum:
            sb = nl.ndarray(res.shape, res.dtype, buffer=nl.sbuf)
            nisa.tensor_copy(sb, res)
            res = sb
        out = nl.ndarray(res.shape, res.dtype, buffer=nl.shared_hbm)
        nl.store(out, res)
        return out

    result = nki.trace(kernel, chip=chip)(*arrays)
    return np.asarray(result.outputs), result


def body_ops(trace: nki.TraceResult, body: Callable[..., object]) -> list[Op]:
    """Opcodes recorded by the body's own line (its nl call)."""
    name = body.__code__.co_name
    return [i.opcode for i in trace.instructions if i.location.function == name]


def expect_error(exc: type[NkiError], body: Callable[..., object], *arrays: np.ndarray,
                 match: str = "") -> NkiError:
    """body(*tiles) raises `exc`, located at the body's line (in the test file)."""
    with pytest.raises(exc, match=match) as info:
        evaluate(body, *arrays)
    code = body.__code__
    assert info.value.location == f"{code.co_filename}:{code.co_firstlineno}"
    return info.value
