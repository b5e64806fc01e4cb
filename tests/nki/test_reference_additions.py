"""Names added from the NKI API reference: checked against numpy and each page's wording.

nl.tan/trunc/fmod/mod/erf_dx/gelu_apprx_sigmoid_dx, zeros_like/empty_like, device_print,
the buffer predicates and MemoryRegion, NKIObject, the tile_size fields, NkiTensor's
reinterpret_cast/is_indirect, nki.simulate_kernel/baremetal, nki.dtype, the compiler's
SpecializationConfig, and how refusal placeholders behave.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import sys

import numpy as np
import pytest

from tessera import nki
from tessera.nki import compiler as ncc
from tessera.nki import isa as nisa
from tessera.nki import language as nl
from tessera.nki import typing as nt

RNG = np.random.default_rng(11)


def _unary_kernel(x, op):
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    nl.store(out, op(nl.load(x)))
    return out


def _erf_dx(x: np.ndarray) -> np.ndarray:
    return 2.0 / np.sqrt(np.pi) * np.exp(-x * x)


def _gelu_sigmoid_dx(x: np.ndarray) -> np.ndarray:
    # central difference of x * sigmoid(1.702 x), in float64
    def f(v: np.ndarray) -> np.ndarray:
        return v / (1.0 + np.exp(-1.702 * v))

    h = 1e-4
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("op, ref", [
    (nl.tan, np.tan), (nl.trunc, np.trunc), (nl.erf_dx, _erf_dx),
    (nl.gelu_apprx_sigmoid_dx, _gelu_sigmoid_dx),
], ids=lambda v: getattr(v, "__name__", ""))
def test_new_unary_operators_match_numpy_in_a_kernel(op, ref) -> None:
    x = RNG.uniform(-1.4, 1.4, (32, 16)).astype(np.float32)  # tan is finite here
    result = nki.trace(_unary_kernel)(x, op)
    np.testing.assert_allclose(result.outputs, ref(x.astype(np.float64)), rtol=1e-5,
                               atol=1e-5)
    assert [i.opcode for i in result.instructions if i.engine is not nki.Engine.DMA] == [
        nki.Opcode.ACTIVATION]


def test_trunc_rounds_toward_zero_and_erf_dx_is_the_derivative_of_erf() -> None:
    np.testing.assert_array_equal(nl.trunc(np.array([3.7, -3.7, -0.2], np.float32)),
                                  [3.0, -3.0, -0.0])
    for v in (-1.0, 0.0, 0.5):
        h = 1e-4
        slope = (math.erf(v + h) - math.erf(v - h)) / (2 * h)
        assert float(nl.erf_dx(np.float32(v))) == pytest.approx(slope, rel=1e-5)


def test_mod_has_the_divisor_sign_and_fmod_the_dividend_sign() -> None:
    x = np.array([7.0, -7.0, 7.0, -7.0], np.float32)
    y = np.array([3.0, 3.0, -3.0, -3.0], np.float32)
    np.testing.assert_array_equal(nl.mod(x, y), [1.0, 2.0, -2.0, -1.0])  # Python's x % y
    np.testing.assert_array_equal(nl.fmod(x, y), [1.0, -1.0, 1.0, -1.0])

    def kernel(a, b):
        out = nl.ndarray(a.shape, nl.float32, buffer=nl.shared_hbm)
        nl.store(out, nl.fmod(nl.load(a), nl.load(b)))
        return out

    np.testing.assert_array_equal(nki.simulate(kernel)(x[None], y[None]), [np.fmod(x, y)])


def test_zeros_like_and_empty_like_follow_their_pages() -> None:
    seen = {}

    def kernel(a):
        t = nl.load(a)
        z = nl.zeros_like(t, dtype=nl.bfloat16)
        e = nl.empty_like(a)  # dtype and buffer of the argument (HBM)
        z2 = nl.zeros_like(a)  # buffer defaults to SBUF
        seen.update(z=(z.shape, z.dtype, z.buffer), e=(e.shape, e.dtype, e.buffer),
                    z2=z2.buffer)
        out = nl.ndarray(a.shape, nl.float32, buffer=nl.shared_hbm)
        nisa.tensor_copy(t, z)
        nl.store(out, t)
        return out

    np.testing.assert_array_equal(nki.simulate(kernel)(np.ones((4, 8), np.float32)), 0.0)
    assert seen["z"] == ((4, 8), nl.bfloat16, nl.sbuf)
    assert seen["e"] == ((4, 8), nl.float32, nl.hbm)
    assert seen["z2"] is nl.sbuf


def test_device_print_prints_the_prefix_and_values(capsys: pytest.CaptureFixture) -> None:
    def kernel(a):
        nl.device_print("tile:", nl.load(a))

    result = nki.trace(kernel)(np.arange(4, dtype=np.float32).reshape(1, 4))
    assert "tile: [[0. 1. 2. 3.]]" in capsys.readouterr().out
    assert [i.opcode for i in result.instructions] == [nki.Opcode.DMA_COPY]  # no instruction


def test_buffer_predicates_and_memory_region() -> None:
    assert nl.is_sbuf(nl.sbuf) and nl.is_psum(nl.psum) and not nl.is_psum(nl.sbuf)
    assert nl.is_on_chip(nl.psum) and not nl.is_on_chip(nl.shared_hbm)
    assert all(nl.is_hbm(b) for b in (nl.hbm, nl.private_hbm, nl.shared_hbm))
    assert nl.MemoryRegion.sbuf is nl.sbuf and nl.MemoryRegion.shared_hbm is nl.shared_hbm
    assert nl.is_sbuf("sbuf")
    with pytest.raises(nki.KernelUsageError, match="expected a buffer"):
        nl.is_sbuf(3)


@dataclasses.dataclass(frozen=True)
class _Config(nl.NKIObject):
    scale: float = 2.0
    dtype: object = nl.float32


def test_nkiobject_subclasses_are_plain_objects_kernels_can_take() -> None:
    cfg = _Config(scale=3.0)
    assert dataclasses.asdict(cfg) == {"scale": 3.0, "dtype": nl.float32}
    assert dataclasses.replace(cfg, scale=1.0).scale == 1.0

    def kernel(a, config):
        t = nl.load(a)
        nisa.tensor_scalar(t, t, nl.multiply, config.scale)
        out = nl.ndarray(a.shape, config.dtype, buffer=nl.shared_hbm)
        nl.store(out, t)
        return out

    np.testing.assert_array_equal(nki.simulate(kernel)(np.ones((2, 2), np.float32), cfg), 3.0)

    class Plain(nl.NKIObject):
        pass

    assert Plain(a=1, b="x").b == "x"
    seen = []
    nki.simulate(lambda a: seen.append(isinstance(nl.load(a), nl.NKIObject)))(
        np.zeros((1, 1), np.float32))
    assert seen == [True]  # NkiTensor derives from NKIObject, as in NKI


def test_tile_size_fields_of_the_page() -> None:
    ts = nl.tile_size  # outside a kernel: the default chip (trn2)
    assert ts.psum_fmax_bytes == 2048 == ts.psum_fmax * 4
    assert ts.sbuf_fmax == ts.sbuf_fmax_bytes // 4
    assert ts.total_available_sbuf_size == ts.sbuf_fmax_bytes == 224 * 1024
    with pytest.raises(nki.KernelUsageError, match="nl.tile_size.sbuf_min_align"):
        _ = ts.sbuf_min_align


def test_view_aliases_and_annotations() -> None:
    seen = {}

    def kernel(a, ids):
        t = nl.load(a)
        seen["cast"] = t.reinterpret_cast(nl.int32).dtype
        seen["plain"] = a.is_indirect()
        idx = nl.load(ids)
        seen["indirect"] = a.ap([[4, 2], [1, 4]], 0, vector_offset=idx).is_indirect()

    nki.simulate(kernel)(np.zeros((2, 4), np.float32), np.zeros((2, 1), np.int32))
    assert seen == {"cast": nl.int32, "plain": False, "indirect": True}
    assert nt.tensor[(128, 512), nl.float32] is nl.NkiTensor  # Beta-1 annotations evaluate
    assert nt.mutable_tensor is nl.NkiTensor


def test_simulate_kernel_and_baremetal_run_beta1_style() -> None:
    def add_one(a):
        out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
        t = nl.load(a)
        nisa.tensor_scalar(t, t, nl.add, 1.0)
        nl.store(out, t)
        return out

    x = np.zeros((2, 3), np.float32)
    np.testing.assert_array_equal(nki.simulate_kernel(nki.baremetal(add_one), x), 1.0)
    np.testing.assert_array_equal(nki.baremetal(save_neff_name="k.neff")(add_one)(x), 1.0)
    bench = nki.benchmark(warmup=1, iters=2)(add_one)
    np.testing.assert_array_equal(bench(x), 1.0)
    assert bench.benchmark_result.nc_latency.get_latency_percentile(50) > 0


def test_compiler_additions() -> None:
    cfg = ncc.SpecializationConfig(allow_nested_config_override=True)
    kernel = nki.jit(specialization_config=cfg)(lambda a: None)
    assert isinstance(kernel, nki.Kernel)
    assert ncc.force_auto_alloc(len) is len
    with pytest.raises(nki.KernelUsageError, match="nki.compiler.sbuf"):
        ncc.sbuf.mod_alloc(base_addr=0)


def test_isa_validation_error_and_dma_engine_members() -> None:
    assert issubclass(nki.PartitionError, nisa.NkiValidationError)
    assert {"dma", "gpsimd_dma"} <= set(nisa.dma_engine.__members__)


def test_refusal_placeholders_behave_like_missing_apis() -> None:
    assert not isinstance(object(), nl.mgrid)  # no such object exists here
    with pytest.raises(nki.KernelUsageError, match="nl.mgrid"):
        class _Grid(nl.mgrid):  # subclassing is a use
            pass
    with pytest.raises(nki.KernelUsageError, match="nl.mgrid"):
        _ = nl.mgrid[0:128, 0:512]
    with pytest.raises(nki.KernelUsageError, match="nl.average"):
        _ = nl.average.value
    assert "not implemented" in repr(nl.prelu)
    assert not hasattr(nl.prelu, "_private")  # private probes see a missing attribute


def test_view_parameters_that_are_refused() -> None:
    def kernel(a, i):
        idx = nl.load(i)
        a.select(0, idx)

    with pytest.raises(nki.KernelUsageError, match="select with a tensor index") as info:
        nki.simulate(kernel)(np.zeros((2, 4), np.float32), np.zeros((1, 1), np.int32))
    assert info.value.location.startswith(__file__)
    # ap(dtype=) is implemented now: tests/nki/test_tensor_views_extra.py


def test_compat_install_resolves_collectives_and_dtype() -> None:
    from tessera.nki import compat

    saved = {k: sys.modules.pop(k) for k in list(sys.modules)
             if k == "nki" or k.startswith("nki.")}
    try:
        assert compat.install(force=True)
        dtype = importlib.import_module("nki.dtype")
        collectives = importlib.import_module("nki.collectives")
        assert dtype.float8_e4m3fn_x4 is nl.float8_e4m3fn_x4
        assert collectives.all_gather is nki.collectives.all_gather
        assert importlib.import_module("nki").dtype is dtype
    finally:
        compat.uninstall()
        sys.modules.update(saved)
