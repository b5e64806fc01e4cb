"""The example kernel files in examples/kernels/ against their numpy references.

Each kernel runs at two or more shapes (ragged ones included where the kernel supports
them) in float32 and bfloat16; outputs must match the file's `reference` within a
dtype-dependent tolerance and keep the input dtype.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from tessera import nki
from tessera.nki import language as nl
from tessera.nki.dtypes import to_dtype
from tessera.nki.kernel_files import KernelFile, load_kernel_file
from tessera.nki.stream import Engine, Opcode

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "kernels"
DTYPES = (nl.float32, nl.bfloat16)
# relative to the largest reference magnitude: fp32 leaves room for summation order only,
# bf16 for one rounding of the output (2^-8) plus a few of intermediates
REL_TOL = {"float32": 1e-4, "bfloat16": 2e-2}


@functools.cache
def _file(name: str) -> KernelFile:
    return load_kernel_file(EXAMPLES / f"{name}.py")


def _assert_matches(out: np.ndarray, inputs: tuple, kfile: KernelFile, dtype: object) -> None:
    expected = kfile.reference(inputs)
    want = to_dtype(dtype)
    assert out.shape == expected.shape
    assert to_dtype(out.dtype) == want, f"output dtype {out.dtype}, inputs {want.name}"
    got = out.astype(np.float64)
    assert np.all(np.isfinite(got)), "output holds NaN: a tile was stored uninitialised"
    scale = float(np.max(np.abs(expected)))
    err = float(np.max(np.abs(got - expected)))
    tol = REL_TOL[want.name]
    assert err <= tol * scale, f"max abs error {err:.3e} > {tol:.0e} x {scale:.3e}"


def _run(name: str, kernel: str, inputs: tuple, dtype: object, **kwargs: object) -> object:
    kfile = _file(name)
    result = nki.trace(kfile.kernel(kernel))(*inputs, **kwargs)
    _assert_matches(result.outputs, inputs, kfile, dtype)
    return result


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", [(256, 512), (200, 384), (128, 64)])
def test_vector_add(shape: tuple[int, int], dtype: object) -> None:
    inputs = _file("vector_add").module.example_inputs(shape=shape, dtype=dtype)
    result = _run("vector_add", "vector_add", inputs, dtype)
    tiles = -(-shape[0] // 128)
    assert len(result.instructions) == 4 * tiles  # 2 loads, 1 add, 1 store per tile


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", [(256, 512), (130, 1000)])
def test_softmax_rows(shape: tuple[int, int], dtype: object) -> None:
    inputs = _file("softmax").module.example_inputs(shape=shape, dtype=dtype)
    result = _run("softmax", "softmax_rows", inputs, dtype)
    acts = [i for i in result.instructions if i.opcode is Opcode.ACTIVATION]
    assert acts and all(i.engine is Engine.SCALAR for i in acts)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", [(256, 512), (200, 384)])
def test_rmsnorm(shape: tuple[int, int], dtype: object) -> None:
    inputs = _file("rmsnorm").module.example_inputs(shape=shape, dtype=dtype)
    _run("rmsnorm", "rmsnorm", inputs, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", [(256, 512), (130, 1280)])
def test_layernorm(shape: tuple[int, int], dtype: object) -> None:
    inputs = _file("layernorm").module.example_inputs(shape=shape, dtype=dtype)
    result = _run("layernorm", "layernorm", inputs, dtype)
    tiles, chunks = -(-shape[0] // 128), -(-shape[1] // 512)
    stats = [i for i in result.instructions if i.opcode is Opcode.BN_STATS]
    assert len(stats) == tiles * chunks  # bn_stats takes at most 512 elements per partition


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", [(256, 384), (200, 130)])
def test_transpose2d(shape: tuple[int, int], dtype: object) -> None:
    inputs = _file("transpose2d").module.example_inputs(shape=shape, dtype=dtype)
    result = _run("transpose2d", "transpose2d", inputs, dtype)
    # a transpose moves bits: it must be exact in every dtype
    np.testing.assert_array_equal(result.outputs, inputs[0].T)


# (M, K, N) and per-variant keyword arguments small enough for < 1 s per case
MATMUL_CASES = [
    pytest.param((256, 256, 1024), {"matmul_block_all_dims": {
        "BLOCK_M": 128, "BLOCK_N": 512, "BLOCK_K": 128}}, id="256x256x1024-multiblock"),
    pytest.param((128, 384, 512), {"matmul_block_free_dims": {
        "TILES_IN_BLOCK_M": 1, "TILES_IN_BLOCK_N": 1}}, id="128x384x512-default-blocks"),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize(("mkn", "kwargs"), MATMUL_CASES)
@pytest.mark.parametrize("kernel", _file("matmul_tutorial").module.KERNELS)
def test_matmul_variants(kernel: str, mkn: tuple[int, int, int], kwargs: dict,
                         dtype: object) -> None:
    m, k, n = mkn
    inputs = _file("matmul_tutorial").module.example_inputs(M=m, K=k, N=n, dtype=dtype)
    result = _run("matmul_tutorial", kernel, inputs, dtype, **kwargs.get(kernel, {}))
    matmuls = [i for i in result.instructions if i.opcode is Opcode.NC_MATMUL]
    assert len(matmuls) == (m // 128) * (k // 128) * (n // 512)


def test_matmul_variants_move_less_data_in_order() -> None:
    """Each tutorial step must cut HBM->SBUF traffic (that is its whole point)."""
    kfile = _file("matmul_tutorial")
    # big enough that every blocking step pays off (at 256x256x1024 versions 3 and 4 tie)
    inputs = kfile.module.example_inputs(M=512, K=512, N=2048)
    loaded = []
    for kernel in kfile.module.KERNELS:
        result = nki.trace(kfile.kernel(kernel))(*inputs)
        loaded.append(sum(i.reads[0].num_bytes for i in result.instructions
                          if i.opcode is Opcode.DMA_COPY and not i.reads[0].buffer.on_chip))
    assert loaded == sorted(loaded, reverse=True) and len(set(loaded)) == len(loaded), loaded


def test_matmul_rejects_shapes_that_are_not_tile_multiples() -> None:
    kfile = _file("matmul_tutorial")
    inputs = kfile.module.example_inputs(M=200, K=256, N=512)
    with pytest.raises(AssertionError, match="multiples"):
        nki.simulate(kfile.kernel("matmul_tiled"))(*inputs)


def test_symbolic_stream_equals_functional_stream() -> None:
    kfile = _file("matmul_tutorial")
    kernel = kfile.kernel("matmul_block_all_dims")
    inputs = kfile.module.example_inputs(M=256, K=256, N=1024)
    blocks = {"BLOCK_M": 128, "BLOCK_N": 512, "BLOCK_K": 128}

    def trace(symbolic: bool, args: tuple) -> nki.TraceResult:
        # one call site: input tensors record the launching line as their location
        return nki.trace(kernel, symbolic=symbolic, chip="trn1")(*args, **blocks)

    functional = trace(False, inputs)
    symbolic = trace(True, tuple(nki.TensorSpec(x.shape, x.dtype) for x in inputs))
    assert symbolic.symbolic and not functional.symbolic
    assert sum(i.opcode is Opcode.NC_MATMUL for i in functional.instructions) == 8
    assert symbolic.instructions == functional.instructions
    assert symbolic.tensors == functional.tensors
    assert symbolic.outputs == nki.TensorSpec((256, 1024), nl.bfloat16)


@pytest.mark.parametrize("name", ["vector_add", "matmul_tutorial", "softmax", "rmsnorm",
                                  "layernorm", "transpose2d"])
def test_every_kernel_passes_on_its_default_example_inputs(name: str) -> None:
    kfile = _file(name)
    assert kfile.kernels, f"{name}.py defines no @nki.jit kernel"
    inputs = kfile.module.example_inputs()
    for kernel in kfile.kernels:
        out = nki.simulate(kfile.kernel(kernel))(*inputs)
        _assert_matches(out, inputs, kfile, inputs[0].dtype)
