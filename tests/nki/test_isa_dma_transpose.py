"""nisa.dma_transpose against numpy: bit-exact permutations and the DMA's rules."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.nki.errors import DmaSourceError, DTypeError, KernelUsageError, ShapeMismatchError
from tessera.nki.stream import Engine, Opcode

RNG = np.random.default_rng(5)
BF16 = ml_dtypes.bfloat16
PERM = {2: (1, 0), 3: (2, 1, 0), 4: (3, 1, 2, 0)}


def transpose_kernel(via_sbuf: bool, **kwargs):
    """HBM src -> SBUF dst by DMA transpose (or src first copied to SBUF: SBUF -> SBUF)."""

    @nki.jit
    def kernel(x):
        shape = tuple(x.shape[a] for a in PERM[len(x.shape)])
        src = x
        if via_sbuf:
            src = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
            nisa.dma_copy(src, x)
        t = nl.ndarray(shape, x.dtype, buffer=nl.sbuf)
        nisa.dma_transpose(t, src, **kwargs)
        out = nl.ndarray(shape, x.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(out, t)
        return out

    return kernel


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint8)


@pytest.mark.parametrize("via_sbuf", [False, True], ids=["hbm", "sbuf"])
@pytest.mark.parametrize("dtype", [np.float32, BF16, np.float16, np.int32, np.int16],
                         ids=["f32", "bf16", "f16", "i32", "i16"])
def test_2d_transpose_is_bit_exact(dtype, via_sbuf):
    x = (RNG.standard_normal((77, 33)) * 100).astype(dtype)
    if np.dtype(dtype).kind == "f":
        x[0, 0], x[1, 2], x[3, 4] = np.nan, -0.0, np.inf
    res = nki.trace(transpose_kernel(via_sbuf))(x)
    assert res.outputs.dtype == x.dtype
    np.testing.assert_array_equal(bits(res.outputs), bits(x.T))
    inst = [i for i in res.instructions if i.opcode is Opcode.DMA_TRANSPOSE]
    assert len(inst) == 1 and inst[0].engine is Engine.DMA
    assert inst[0].attrs.axes == (1, 0)
    assert inst[0].partitions == 33 and inst[0].free_elements == 77


@pytest.mark.parametrize("shape", [(4, 8, 16), (2, 3, 4, 5)])
def test_3d_and_4d_transpose_use_the_documented_permutation(shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    axes = PERM[len(shape)]
    res = nki.trace(transpose_kernel(False, axes=axes))(x)
    np.testing.assert_array_equal(res.outputs, np.transpose(x, axes))


def test_hwdge_transpose_on_trn2():
    x = RNG.standard_normal((16, 128)).astype(BF16)
    kernel = transpose_kernel(False, dge_mode=nisa.dge_mode.hwdge)
    res = nki.trace(kernel, chip="trn2")(x)
    np.testing.assert_array_equal(res.outputs, x.T)
    with pytest.raises(KernelUsageError, match="NeuronCore-v3"):
        nki.simulate(kernel, chip="trn1")(x)
    with pytest.raises(ShapeMismatchError, match="hardware-DGE"):
        nki.simulate(kernel, chip="trn2")(RNG.standard_normal((16, 100)).astype(BF16))


def _error_kernel(case: str):
    @nki.jit
    def kernel(x):
        ps = nl.ndarray((8, 16), nl.float32, buffer=nl.psum)
        sb = nl.ndarray((8, 16), nl.float32, buffer=nl.sbuf)
        if case == "psum_src":
            nisa.dma_transpose(sb, ps)
        elif case == "psum_dst":
            nisa.dma_transpose(ps, x)
        elif case == "one_byte":
            src = nl.ndarray((16, 8), nl.int8, buffer=nl.sbuf)
            dst = nl.ndarray((8, 16), nl.int8, buffer=nl.sbuf)
            nisa.dma_transpose(dst, src)
        elif case == "dtype_change":
            nisa.dma_transpose(nl.ndarray((8, 16), nl.bfloat16, buffer=nl.sbuf), x)
        elif case == "shape":
            nisa.dma_transpose(nl.ndarray((16, 8), nl.float32, buffer=nl.sbuf), x)
        elif case == "axes":
            nisa.dma_transpose(sb, x, axes=(0, 1))
        elif case == "swdge":
            nisa.dma_transpose(sb, x, dge_mode=nisa.dge_mode.swdge)
        return x

    return kernel


@pytest.mark.parametrize(("case", "error"), [
    ("psum_src", DmaSourceError), ("psum_dst", DmaSourceError), ("one_byte", DTypeError),
    ("dtype_change", DTypeError), ("shape", ShapeMismatchError), ("axes", KernelUsageError),
    ("swdge", KernelUsageError),
])
def test_dma_transpose_rejects(case, error):
    with pytest.raises(error):
        nki.simulate(_error_kernel(case))(np.zeros((16, 8), np.float32))


def test_error_names_the_kernel_line():
    with pytest.raises(DmaSourceError) as info:
        nki.simulate(_error_kernel("psum_src"))(np.zeros((16, 8), np.float32))
    assert "test_isa_dma_transpose.py" in str(info.value)
