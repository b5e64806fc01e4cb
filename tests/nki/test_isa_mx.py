"""nisa.quantize_mx and nisa.nc_matmul_mx (NeuronCore-v4) bit for bit against an
independent numpy/ml_dtypes reference of the OCP MX format (with the twice-larger scale the
quantize_mx page documents), one error per documented constraint, the NeuronCore-v4 gate,
their cost rules, nc_matmul refusing the scale type, and the MX matmul example kernel
(examples/kernels/mx_matmul.py)."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import hw, nki, sim
from tessera.nki.errors import (
    BufferKindError,
    DTypeError,
    KernelUsageError,
    MatmulShapeError,
    PartitionError,
    PsumBankError,
    ShapeMismatchError,
)
from tessera.nki.kernel_files import load_kernel_file
from tessera.nki.stream import Engine, Opcode
from tessera.sim.cost_rules import engine_cycles
from tessera.sim.timing_calibration import load_calibration

RNG = np.random.default_rng(7)
F32, U8 = nl.float32, nl.uint8
E4, E5, FP4 = nl.float8_e4m3fn_x4, nl.float8_e5m2_x4, nl.float4_e2m1fn_x4
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kernels" / "mx_matmul.py"
# x4 type -> (element type, bits per element, OCP emax of the element)
FORMAT = {"float8_e4m3fn_x4": (ml_dtypes.float8_e4m3fn, 8, 8),
          "float8_e5m2_x4": (ml_dtypes.float8_e5m2, 8, 15),
          "float4_e2m1fn_x4": (ml_dtypes.float4_e2m1fn, 4, 2)}


# ---------------------------------------------------------------- OCP MX reference
def ref_pack(values: np.ndarray, x4: str) -> np.ndarray:
    """[P, 4F] element values -> [P, F] containers, value j in bits j*w.. (low first)."""
    elem, bits, _ = FORMAT[x4]
    codes = np.ascontiguousarray(values.astype(elem)).view(np.uint8).astype(np.uint64)
    codes = codes.reshape(values.shape[0], -1, 4) & ((1 << bits) - 1)
    packed = sum(codes[..., j] << (j * bits) for j in range(4))
    return packed.astype(np.uint32 if bits == 8 else np.uint16)


def ref_unpack(containers: np.ndarray, x4: str) -> np.ndarray:
    """[P, F] containers -> [P, F, 4] float64 element values."""
    elem, bits, _ = FORMAT[x4]
    c = containers.astype(np.uint64)
    codes = np.stack([(c >> (j * bits)) & ((1 << bits) - 1) for j in range(4)], axis=-1)
    return codes.astype(np.uint8).view(elem).astype(np.float64)


def ref_quantize(src: np.ndarray, x4: str) -> tuple[np.ndarray, np.ndarray]:
    """(containers [P, F], scale bytes [P/8, F]) of src [P, 4F]. The OCP sample algorithm's
    scale is 2**(floor(log2 amax) - emax); quantize_mx uses twice that."""
    elem, _, emax = FORMAT[x4]
    p, n = src.shape
    g = src.astype(np.float64).reshape(p // 8, 8, n // 4, 4)
    amax = np.abs(g).max(axis=(1, 3))
    shared = np.floor(np.log2(np.where(amax > 0, amax, 1.0))) - emax + 1
    shared = np.where(amax > 0, shared, -127).clip(-127, 127)
    top = float(ml_dtypes.finfo(elem).max)
    vals = np.clip(g / np.exp2(shared)[:, None, :, None], -top, top).reshape(p, n)
    return ref_pack(vals.astype(np.float32), x4), (shared + 127).astype(np.uint8)


def ref_matmul(st, mv, st_scale, mv_scale, st_x4, mv_x4) -> np.ndarray:
    """sum over (k, q) of dequantised stationary[k, m, q] * moving[k, n, q], as float32."""
    def deq(c, s, x4):
        f = np.where(s == 255, np.nan, np.exp2(s.astype(np.float64) - 127))
        return ref_unpack(c, x4) * np.repeat(f, 8, axis=0)[:, :, None]
    return np.einsum("kmq,knq->mn", deq(st, st_scale, st_x4),
                     deq(mv, mv_scale, mv_x4)).astype(np.float32)


def spread(scales: np.ndarray) -> np.ndarray:
    """Scale rows [K/8, F] in the SBUF layout: 4 rows atop each quadrant ([4, F] for K=32)."""
    k = scales.shape[0] * 8
    out = np.zeros((k if k > 32 else 4, scales.shape[1]), np.uint8)
    for g in range(scales.shape[0]):
        out[(g // 4) * 32 + g % 4] = scales[g]
    return out


def random_mx(k: int, f: int, x4: str, lo: int = 122, hi: int = 132):
    """(containers [k, f], scale bytes [k/8, f]) with random finite values."""
    elem = FORMAT[x4][0]
    vals = RNG.normal(0.0, 2.0, (k, 4 * f)).astype(np.float32).astype(elem)
    return ref_pack(vals, x4), RNG.integers(lo, hi, (k // 8, f)).astype(np.uint8)


# ---------------------------------------------------------------- kernels
def run_quantize(src: np.ndarray, x4, scale_dtype=U8, fill=171) -> tuple[np.ndarray, ...]:
    p, n = src.shape
    scale_rows = p if p > 32 else 4

    @nki.jit
    def kernel(x):
        s = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(s, x)
        q = nl.ndarray((p, n // 4), x4, buffer=nl.sbuf)
        sc = nl.ndarray((scale_rows, n // 4), scale_dtype, buffer=nl.sbuf)
        nisa.memset(sc, fill)  # rows without scales must keep it
        nisa.quantize_mx(dst=q, src=s, dst_scale=sc)
        outs = []
        for t in (q, sc):
            o = nl.ndarray(t.shape, t.dtype, buffer=nl.shared_hbm)
            nisa.dma_copy(o, t)
            outs.append(o)
        return tuple(outs)

    q, sc = nki.simulate(kernel, chip="trn3")(src)
    return q, np.ascontiguousarray(sc).view(np.uint8)


def run_matmul(calls, m: int, n: int, dst_dtype=F32, **kw) -> np.ndarray:
    """Each call (st, mv, st_scale, mv_scale, st_x4, mv_x4) into one PSUM tile, in order."""
    arrays = [a for c in calls for a in (c[0], c[1], spread(c[2]), spread(c[3]))]

    @nki.jit
    def kernel(*hbm):
        dst = nl.ndarray((m, n), dst_dtype, buffer=nl.psum)
        for i, c in enumerate(calls):
            tiles = []
            for a, t in zip(hbm[4 * i:4 * i + 4], (c[4], c[5], U8, U8), strict=True):
                sb = nl.ndarray(a.shape, t, buffer=nl.sbuf)
                nisa.dma_copy(sb, a.view(t) if t is not U8 else a)
                tiles.append(sb)
            nisa.nc_matmul_mx(dst, tiles[0], tiles[1], tiles[2], tiles[3], **kw)
        res = nl.ndarray((m, n), F32, buffer=nl.sbuf)
        nisa.tensor_copy(res, dst)
        out = nl.ndarray((m, n), F32, buffer=nl.shared_hbm)
        nisa.dma_copy(out, res)
        return out

    return nki.simulate(kernel, chip="trn3")(*arrays)


# ---------------------------------------------------------------- quantize_mx values
def _groups(p: int, f: int) -> np.ndarray:
    """bf16 src [p, 4f]: groups of 8x4 at magnitudes 2**-30..2**30 plus the edge cases."""
    mags = np.exp2(RNG.integers(-30, 30, (p // 8, 1, f, 1)).astype(np.float64))
    src = (RNG.normal(0.0, 1.0, (p // 8, 8, f, 4)) * mags).astype(np.float32)
    src[0, :, 0] = 0.0  # all-zero group: scale 2**-127
    src[0, :, 1] = 0.0
    src[0, 0, 1, 0] = 1.0  # amax exactly 1: scale 2**-(emax-1), twice the OCP one
    src[0, :, 2] = 2.0 ** -133  # bf16's smallest subnormal: the scale clamps at 2**-127
    src[0, :, 3] = 255.9  # rounds up to 256 (e4m3fn) without saturating
    src[1, :, 0] = [1.0625, 1.1875, -1.0625, 3.0] * 1  # ties between e4m3fn codes
    src[1, :, 1] = 3.0e38  # near bf16's largest: the scale clamps at 2**127
    return src.reshape(p, 4 * f).astype(ml_dtypes.bfloat16)


@pytest.mark.parametrize("x4", [E4, E5], ids=str)
def test_quantize_mx_matches_the_ocp_reference_bit_for_bit(x4):
    src = _groups(128, 16)
    q, sc = run_quantize(src, x4)
    want_q, want_s = ref_quantize(src, x4.nki_name)
    np.testing.assert_array_equal(q, want_q)
    rows = [(g // 4) * 32 + g % 4 for g in range(16)]
    np.testing.assert_array_equal(sc[rows], want_s)  # 4 rows atop each quadrant
    others = np.setdiff1d(np.arange(128), rows)
    assert np.all(sc[others] == 171)
    emax = FORMAT[x4.nki_name][2]
    assert sc[0, 0] == 0 and sc[0, 2] == 0  # zeros; tiny values clamp at 2**-127
    assert sc[0, 1] == 127 - (emax - 1)  # amax 1.0: the page's 2x scale (OCP: 127 - emax)
    elem = ref_unpack(q[:8, 3:4], x4.nki_name)
    assert np.abs(elem).max() <= 2.0 ** emax  # never saturates


def test_quantize_mx_fp16_source_e8m0_scales_and_one_quadrant():
    src = RNG.normal(0.0, 100.0, (32, 64)).astype(np.float16)
    q, sc = run_quantize(src, E4, scale_dtype=nl.float8_e8m0fnu, fill=2.0)
    want_q, want_s = ref_quantize(src, "float8_e4m3fn_x4")
    np.testing.assert_array_equal(q, want_q)
    np.testing.assert_array_equal(sc, want_s)  # [4, F]: a 32-partition tile's scales


def test_quantize_mx_marks_groups_with_nan_or_inf_nan():
    src = np.ones((32, 8), np.float32)
    src[0, 0], src[8, 4] = np.nan, np.inf
    q, sc = run_quantize(src.astype(ml_dtypes.bfloat16), E5)
    assert sc[0, 0] == 255 and sc[1, 1] == 255 and sc[0, 1] == 127 - 14
    values = ref_unpack(q, "float8_e5m2_x4")
    assert np.isnan(values[0:8, 0]).all() and np.isnan(values[8:16, 1]).all()
    assert not np.isnan(values[0:8, 1]).any()


# ---------------------------------------------------------------- nc_matmul_mx values
def test_nc_matmul_mx_fp8_matches_the_reference_bit_for_bit():
    st, ss = random_mx(128, 64, "float8_e4m3fn_x4")
    mv, ms = random_mx(128, 96, "float8_e4m3fn_x4")
    out = run_matmul([(st, mv, ss, ms, E4, E4)], 64, 96)
    np.testing.assert_array_equal(out, ref_matmul(st, mv, ss, ms, "float8_e4m3fn_x4",
                                                  "float8_e4m3fn_x4"))


def test_nc_matmul_mx_fp4_by_fp8_into_bf16_with_a_four_row_scale_tile():
    st, ss = random_mx(32, 16, "float4_e2m1fn_x4")
    mv, ms = random_mx(32, 1024, "float8_e5m2_x4")
    out = run_matmul([(st, mv, ss, ms, FP4, E5)], 16, 1024, dst_dtype=nl.bfloat16)
    want = ref_matmul(st, mv, ss, ms, "float4_e2m1fn_x4", "float8_e5m2_x4")
    np.testing.assert_array_equal(out, want.astype(ml_dtypes.bfloat16).astype(np.float32))


def test_nc_matmul_mx_accumulates_in_psum_and_row_tiles():
    a = (*random_mx(64, 32, "float8_e5m2_x4"), *random_mx(64, 128, "float8_e4m3fn_x4"))
    b = (*random_mx(64, 32, "float8_e5m2_x4"), *random_mx(64, 128, "float8_e4m3fn_x4"))
    calls = [(x[0], x[2], x[1], x[3], E5, E4) for x in (a, b)]
    ref = [ref_matmul(*c[:4], "float8_e5m2_x4", "float8_e4m3fn_x4") for c in calls]
    out = run_matmul(calls, 32, 128, tile_position=(64, 0), tile_size=(64, 128))
    np.testing.assert_array_equal(out, ref[0] + ref[1])  # each rounded to fp32, then added
    out = run_matmul(calls, 32, 128, accumulate=False)
    np.testing.assert_array_equal(out, ref[1])


def test_nc_matmul_mx_nan_scale_gives_nan():
    st, ss = random_mx(32, 8, "float8_e4m3fn_x4")
    mv, ms = random_mx(32, 8, "float8_e4m3fn_x4")
    ms[1, 5] = 255
    out = run_matmul([(st, mv, ss, ms, E4, E4)], 8, 8)
    assert np.isnan(out[:, 5]).all() and not np.isnan(np.delete(out, 5, axis=1)).any()


# ---------------------------------------------------------------- errors
def _t(shape, dtype, buffer=nl.sbuf):
    return nl.ndarray(shape, dtype, buffer=buffer)


def _call(fn, chip: str = "trn3") -> nki.TraceResult:
    @nki.jit
    def kernel(x):
        fn()
        return x

    return nki.trace(kernel, symbolic=True, chip=chip)(np.zeros((1, 1), np.float32))


BF16 = nl.bfloat16


def _q(src=(128, 256, BF16), dst=(128, 64, E4), scale=(128, 64, U8), s_buf=nl.sbuf,
       cut=lambda s, d, c: (s, d, c)):
    s, d, c = cut(_t(src[:2], src[2], s_buf), _t(dst[:2], dst[2]), _t(scale[:2], scale[2]))
    nisa.quantize_mx(dst=d, src=s, dst_scale=c)


def _mm(st=(128, 64, E4), mv=(128, 128, E4), ss=(128, 64, U8), ms=(128, 128, U8),
        dst=(64, 128, F32, nl.psum), cut=lambda *a: a, **kw):
    a = cut(*(_t(x[:2], *x[2:]) for x in (st, mv, ss, ms, dst)))
    nisa.nc_matmul_mx(a[4], a[0], a[1], a[2], a[3], **kw)


ERRORS = {
    "q_src_psum": (lambda: _q(s_buf=nl.psum), BufferKindError, "src .* in psum"),
    "q_src_fp32": (lambda: _q(src=(128, 256, F32)), DTypeError, "float16 or bfloat16"),
    "q_dst_fp4": (lambda: _q(dst=(128, 64, FP4)), DTypeError, "MXFP8 only"),
    "q_scale_dtype": (lambda: _q(scale=(128, 64, nl.int32)), DTypeError, "MX scales"),
    "q_partitions": (lambda: _q(cut=lambda s, d, c: (s[0:48], d[0:48], c)), PartitionError,
                     "multiple of 32"),
    "q_free_size": (lambda: _q(src=(128, 254, BF16)), ShapeMismatchError, "multiple of 4"),
    "q_dst_shape": (lambda: _q(dst=(128, 32, E4)), ShapeMismatchError, r"must be \[128, 64\]"),
    "q_dst_start": (lambda: _q(cut=lambda s, d, c: (s[0:32], d[32:64], c[32:36])),
                    PartitionError, "partition for partition"),
    "q_scale_cols": (lambda: _q(scale=(128, 32, U8)), ShapeMismatchError, "one scale per"),
    "q_scale_quadrant": (lambda: _q(cut=lambda s, d, c: (s[0:32], d[0:32], c[32:36])),
                         PartitionError, "first 16 partitions"),
    "q_scale_offset": (lambda: _q(cut=lambda s, d, c: (s[0:32], d[0:32], c[13:17])),
                       PartitionError, "first 16 partitions"),
    "q_scale_rows": (lambda: _q(cut=lambda s, d, c: (s[0:64], d[0:64], c[0:32])),
                     PartitionError, "at least 36"),
    "mm_dst_sbuf": (lambda: _mm(dst=(64, 128, F32, nl.sbuf)), BufferKindError, "psum"),
    "mm_scale_psum": (lambda: _mm(ms=(128, 128, U8, nl.psum)), BufferKindError, "in psum"),
    "mm_bf16_operand": (lambda: _mm(st=(128, 64, BF16)), DTypeError, "float4_e2m1fn_x4"),
    "mm_scale_dtype": (lambda: _mm(ss=(128, 64, F32)), DTypeError, "MX scales"),
    "mm_k_mismatch": (lambda: _mm(cut=lambda a, b, c, d, e: (a, b[0:64], c, d[0:64], e)),
                      MatmulShapeError, "contraction mismatch"),
    "mm_k_not_32": (lambda: _mm(cut=lambda a, b, *r: (a[0:48], b[0:48], *r)),
                    PartitionError, "multiple of 32"),
    "mm_m_odd": (lambda: _mm(st=(128, 63, E4), ss=(128, 63, U8), dst=(63, 128, F32, nl.psum)),
                 MatmulShapeError, "even"),
    "mm_n_fp32": (lambda: _mm(mv=(128, 640, E4), ms=(128, 640, U8),
                              dst=(64, 640, F32, nl.psum)), MatmulShapeError, "at most 512"),
    "mm_dst_dtype": (lambda: _mm(dst=(64, 128, nl.int32, nl.psum)), DTypeError,
                     "float32 or bfloat16"),
    "mm_dst_shape": (lambda: _mm(dst=(32, 128, F32, nl.psum)), MatmulShapeError,
                     r"must be \[64, 128\]"),
    "mm_scale_cols": (lambda: _mm(ss=(128, 32, U8)), ShapeMismatchError, "one scale per"),
    "mm_scale_offset": (lambda: _mm(cut=lambda a, b, c, d, e: (a, b, c[16:128], d, e)),
                        PartitionError, "first 16 partitions"),
    "mm_tile_half": (lambda: _mm(tile_position=(0, 0)), KernelUsageError, "both be set"),
    "mm_tile_column": (lambda: _mm(tile_position=(0, 0), tile_size=(128, 64)),
                       KernelUsageError, "only row tiling"),
    "mm_tile_start": (lambda: _mm(tile_position=(32, 0), tile_size=(64, 128)),
                      KernelUsageError, "multiple of the row size"),
    "mm_tile_k": (lambda: _mm(tile_position=(64, 0), tile_size=(64, 128)), MatmulShapeError,
                  "row tile of 64"),
    "mm_psum_bank": (lambda: _mm(dst=(64, 1024, F32, nl.psum),
                                 cut=lambda *a: (*a[:4], a[4][:, 448:576])), PsumBankError,
                     "PSUM bank"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_each_documented_constraint_is_an_error_at_the_kernel_line(case):
    fn, error, match = ERRORS[case]
    with pytest.raises(error, match=match) as info:
        _call(fn)
    assert "\n" not in str(info.value)
    assert info.value.location is not None and info.value.location.startswith(__file__)


@pytest.mark.parametrize("chip", ["trn1", "trn2"])
def test_mx_instructions_need_neuroncore_v4(chip):
    for fn, name in ((_q, "quantize_mx"), (_mm, "nc_matmul_mx")):
        with pytest.raises(KernelUsageError, match=rf"{name} is available only on "
                                                   rf"NeuronCore-v4 and newer; .*{chip}"):
            _call(fn, chip=chip)


def test_nc_matmul_refuses_the_mx_scale_type():
    def fn():
        nisa.nc_matmul(_t((128, 64), F32, nl.psum), _t((128, 128), nl.float8_e8m0fnu),
                       _t((128, 64), BF16))

    with pytest.raises(DTypeError, match="float8_e8m0fnu, an MX scale type") as info:
        _call(fn)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- stream and timing
def _one(opcode, trace):
    return next(i for i in trace.instructions if i.opcode is opcode)


def test_engines_attrs_and_cost_rules():
    """quantize_mx: Vector engine, N/4 cycles ([A4] four elements per partition per cycle),
    at least MIN_II; nc_matmul_mx: as long as the bf16 nc_matmul of its container shape."""
    def body():
        _q(src=(128, 2048, BF16), dst=(128, 512, E4), scale=(128, 512, U8))
        _q(src=(128, 64, BF16), dst=(128, 16, E5), scale=(128, 16, U8))
        _mm(mv=(128, 512, E4), ms=(128, 512, U8), dst=(64, 512, F32, nl.psum))
        _mm(st=(128, 64, FP4), mv=(128, 512, E4), ms=(128, 512, U8),
            dst=(64, 512, F32, nl.psum))
        nisa.nc_matmul(_t((64, 512), F32, nl.psum), _t((128, 64), BF16), _t((128, 512), BF16))

    trace = _call(body)
    core, cal = hw.load_chip("trn3").core, load_calibration("nc-v4")
    big, small = [i for i in trace.instructions if i.opcode is Opcode.QUANTIZE_MX]
    assert big.engine is Engine.VECTOR and big.attrs.dst_dtype == "float8_e4m3fn_x4"
    assert engine_cycles(big, core, cal) == 2048 / 4
    assert engine_cycles(small, core, cal) == core.costs.min_ii_cycles
    fp8, fp4 = [i for i in trace.instructions if i.opcode is Opcode.NC_MATMUL_MX]
    assert fp8.engine is Engine.TENSOR and (fp8.attrs.precision, fp4.attrs.precision) == (
        "mxfp8", "mxfp4")
    bf16 = engine_cycles(_one(Opcode.NC_MATMUL, trace), core, cal)
    assert engine_cycles(fp8, core, cal) == engine_cycles(fp4, core, cal) == bf16 > 0
    profile = sim.schedule(trace)
    assert all(profile.timeline.end_s[p] > profile.timeline.start_s[p]
               for p, i in enumerate(trace.instructions))


# ---------------------------------------------------------------- the example
def test_mx_matmul_example_matches_its_reference_and_is_four_times_the_bf16_rate():
    kfile = load_kernel_file(EXAMPLE)
    mod = kfile.module
    inputs = mod.example_inputs(M=128, K=1024, N=512, dtype=nl.float32)
    result = nki.trace(kfile.kernel("mx_matmul"), chip="trn3")(*inputs)
    want = mod.reference(*inputs)
    np.testing.assert_allclose(result.outputs, want, rtol=0, atol=1e-6 * np.abs(want).max())
    assert {Opcode.QUANTIZE_MX, Opcode.NC_MATMUL_MX} <= {i.opcode for i in result.instructions}
    bf16_inputs = mod.example_inputs_matmul_bf16(M=128, K=1024, N=512, dtype=nl.float32)
    bf16 = nki.trace(kfile.kernel("matmul_bf16"), chip="trn3")(*bf16_inputs)
    ref = mod.reference_matmul_bf16(*bf16_inputs)
    np.testing.assert_allclose(bf16.outputs, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    busy = [sum(p.timeline.end_s[i] - p.timeline.start_s[i]
                for i, inst in enumerate(t.instructions) if inst.engine is Engine.TENSOR)
            for t in (result, bf16) for p in (sim.schedule(t),)]
    assert busy[1] == pytest.approx(4 * busy[0])
