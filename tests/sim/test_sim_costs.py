"""Instruction cost rules: the published NKI cost model, computed by hand."""

from __future__ import annotations

import pytest
import yaml

import tessera.net  # noqa: F401 - registers the pricer of nki.collectives' rules
import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import hw, nki, sim
from tessera.hw import CalibrationError
from tessera.nki.buffers import Buffer
from tessera.nki.opcodes import OPCODES
from tessera.nki.stream import Engine, Opcode
from tessera.sim.cost_rules import (
    BARRIER,
    COST_RULES,
    SENDRECV,
    TRANSFER,
    engine_cost,
    engine_cycles,
)
from tessera.sim.errors import ScheduleError
from tessera.sim.timing_calibration import CALIBRATION_FILE, load_calibration

V2 = hw.load_chip("trn1").core
V3 = hw.load_chip("trn2").core
CAL2 = load_calibration("nc-v2")
CAL3 = load_calibration("nc-v3")
V4 = hw.load_chip("trn3").core
CAL4 = load_calibration("nc-v4")
# opcodes of NeuronCore-v4 and newer only: priced on trn3
V4_ONLY = {"nc_matmul_mx", "quantize_mx", "exponential", "rand2"}


def _matmul(make_inst, make_tile, dtype: str, k: int = 128, m: int = 128, n: int = 512,
            **flags):
    st = make_tile("st", k, m, dtype)
    mv = make_tile("mv", k, n, dtype)
    ps = make_tile("ps", m, n, "float32", Buffer.PSUM)
    return make_inst(Opcode.NC_MATMUL, Engine.TENSOR, (st, mv), (ps,), partitions=k, free=n,
                     stationary_free=m, moving_free=n, **flags)


@pytest.mark.parametrize(("core", "cal", "dtype", "ns"), [
    (V2, CAL2, "bfloat16", 512 / 2.8),   # 512 cycles at 2.8 GHz = 182.857 ns
    (V3, CAL3, "bfloat16", 512 / 2.4),   # 213.333 ns
    (V2, CAL2, "float32", 4 * 512 / 2.8),  # fp32 inputs run 4x slower
    (V3, CAL3, "float32", 4 * 512 / 2.4),
])
def test_matmul_128x128x512_takes_the_documented_cycles(make_inst, make_tile, core, cal,
                                                         dtype, ns):
    occupancy, _ = engine_cost(_matmul(make_inst, make_tile, dtype), core, cal)
    assert occupancy == pytest.approx(ns * 1e-9, rel=1e-12)


def test_matmul_floor_is_the_initiation_interval(make_inst, make_tile):
    small = _matmul(make_inst, make_tile, "bfloat16", n=32)
    assert engine_cycles(small, V2, CAL2) == 64  # max(MM_INIT=64, min(64, 128), 32)
    assert engine_cycles(_matmul(make_inst, make_tile, "bfloat16", m=16, n=200), V2,
                         CAL2) == 200


def test_fp8_double_row_contracts_twice_as_deep_in_the_bf16_time(make_inst, make_tile):
    # [128, 2, 512] moving / [128, 2, 128] stationary: K=256 in the time of bf16 K=128.
    # nki records per-row free sizes (128, 512) and contraction_rows=2.
    mm = _matmul(make_inst, make_tile, "float8_e4m3", m=128, n=512, perf_mode="double_row",
                 contraction_rows=2)
    assert engine_cycles(mm, V3, CAL3) == 512
    assert sim.matmul_flops(mm) == 2 * 256 * 128 * 512
    plain = _matmul(make_inst, make_tile, "float8_e4m3")
    assert engine_cycles(plain, V3, CAL3) == 512  # fp8 without double_row: bf16 speed


def test_tensor_engine_transpose(make_inst, make_tile):
    def tr(p: int, f: int):
        return make_inst(Opcode.NC_TRANSPOSE, Engine.TENSOR, (make_tile("a", p, f),),
                         (make_tile("b", f, p, buffer=Buffer.PSUM),), partitions=p, free=f)
    assert engine_cycles(tr(128, 128), V2, CAL2) == 128  # max(P, min(64, F))
    assert engine_cycles(tr(32, 16), V2, CAL2) == 32
    assert engine_cycles(tr(16, 100), V2, CAL2) == 64


def _vector(make_inst, make_tile, opcode, dtypes=("float32", "float32"), buffers=None,
            n: int = 512, engine: Engine = Engine.VECTOR, **flags):
    buffers = buffers or (Buffer.SBUF,) * len(dtypes)
    reads = tuple(make_tile(f"r{i}", 128, n, d, b)
                  for i, (d, b) in enumerate(zip(dtypes[:-1], buffers[:-1], strict=True)))
    write = make_tile("w", 128, n, dtypes[-1], buffers[-1])
    return make_inst(opcode, engine, reads, (write,), free=n, **flags)


# (opcode, dtypes (reads..., write), buffers, flags, formula cycles before the 60-cycle
# access overhead) with N = 512 on NC-v2
CASES = [
    (Opcode.TENSOR_TENSOR, ("float32", "float32", "float32"), None, {"op": "add"}, 1024),
    (Opcode.TENSOR_TENSOR, ("float32", "float32", "float32"),
     (Buffer.SBUF, Buffer.PSUM, Buffer.SBUF), {"op": "add"}, 512),  # one input in PSUM
    (Opcode.TENSOR_TENSOR, ("bfloat16",) * 3, None, {"op": "multiply"}, 512),  # bf16 fast
    (Opcode.TENSOR_TENSOR, ("bfloat16",) * 3, None, {"op": "maximum"}, 1024),
    (Opcode.TENSOR_SCALAR, ("float32", "float32"), None, {"op0": "multiply"}, 512),
    (Opcode.SCALAR_TENSOR_TENSOR, ("bfloat16",) * 3, None,
     {"op0": "subtract", "op1": "multiply"}, 512),
    (Opcode.SCALAR_TENSOR_TENSOR, ("float32",) * 3, None, {"op0": "add", "op1": "add"}, 1024),
    (Opcode.TENSOR_REDUCE, ("bfloat16", "bfloat16"), None, {"op": "add"}, 256),
    (Opcode.TENSOR_REDUCE, ("float32", "float32"), None, {"op": "add"}, 512),
    (Opcode.MEMSET, ("bfloat16",), None, {"value": 0.0}, 256),
    (Opcode.MEMSET, ("bfloat16",), None, {"value": 1.0}, 512),
    (Opcode.MEMSET, ("float32",), None, {"value": 0.0}, 512),
    (Opcode.RECIPROCAL, ("float32", "float32"), None, {}, 4096),
    (Opcode.TENSOR_TENSOR_SCAN, ("float32",) * 3, None, {}, 1024),
    (Opcode.TENSOR_SCALAR_REDUCE, ("float32", "float32"), None, {}, 512 + 64),
    (Opcode.BN_STATS, ("float32", "float32"), None, {}, 512),
    (Opcode.BN_AGGR, ("float32", "float32"), None, {}, 512 * 13 / 3),
    (Opcode.TENSOR_COPY_PREDICATED, ("float32", "uint8", "float32"), None, {}, 1024),
    (Opcode.TENSOR_COPY_PREDICATED, ("float32", "uint8", "float32"),
     (Buffer.PSUM, Buffer.SBUF, Buffer.SBUF), {}, 512),
]


@pytest.mark.parametrize(("opcode", "dtypes", "buffers", "flags", "cycles"), CASES)
def test_vector_engine_formulas(make_inst, make_tile, opcode, dtypes, buffers, flags, cycles):
    i = _vector(make_inst, make_tile, opcode, dtypes, buffers, **flags)
    assert engine_cycles(i, V2, CAL2) == pytest.approx(cycles)
    occupancy, latency = engine_cost(i, V2, CAL2)
    assert occupancy == pytest.approx((cycles + 60) / 1.12e9)  # + access overhead, 1.12 GHz
    assert latency == pytest.approx(140 / 1.12e9)


def test_small_instructions_pay_the_minimum_initiation_interval(make_inst, make_tile):
    i = _vector(make_inst, make_tile, Opcode.TENSOR_SCALAR, n=16, op0="add")
    assert engine_cycles(i, V2, CAL2) == 64


def test_scalar_and_gpsimd_formulas(make_inst, make_tile):
    act = _vector(make_inst, make_tile, Opcode.ACTIVATION, engine=Engine.SCALAR, op="exp")
    assert engine_cost(act, V2, CAL2)[0] == pytest.approx((512 + 60) / 1.4e9)
    red = _vector(make_inst, make_tile, Opcode.ACTIVATION_REDUCE, engine=Engine.SCALAR,
                  op="exp", reduce_op="add")
    assert engine_cycles(red, V2, CAL2) == 512 + 64  # max(MIN_II, N) + MIN_II
    iota = make_inst(Opcode.IOTA, Engine.GPSIMD, (), (make_tile("w", 128, 512, "int32"),))
    assert engine_cycles(iota, V2, CAL2) == 150 + 512  # GPSIMD_START + N
    assert engine_cost(iota, V2, CAL2)[0] == pytest.approx((150 + 512 + 60) / 1.4e9)


def test_nc_v3_vector_perf_modes(make_inst, make_tile):
    copy_bf16 = _vector(make_inst, make_tile, Opcode.TENSOR_COPY, ("bfloat16", "bfloat16"))
    assert engine_cycles(copy_bf16, V3, CAL3) == 128  # 4x: 512 bf16 elements per cycle
    assert engine_cycles(copy_bf16, V2, CAL2) == 512
    copy_f32 = _vector(make_inst, make_tile, Opcode.TENSOR_COPY)
    assert engine_cycles(copy_f32, V3, CAL3) == 256  # 2x: 256 elements per cycle
    add = _vector(make_inst, make_tile, Opcode.TENSOR_TENSOR, ("bfloat16",) * 3, op="add")
    assert engine_cycles(add, V3, CAL3) == 256  # perf mode is copy/tensor_scalar only
    occupancy, _ = engine_cost(copy_bf16, V3, CAL3)
    assert occupancy == pytest.approx((128 + 60) / 0.96e9)


def _every_opcode(make_inst, make_tile, make_hbm):
    sb = make_tile("a", 128, 64)
    ps = make_tile("p", 128, 64, buffer=Buffer.PSUM)
    for op in Opcode:
        if op in (Opcode.DMA_COPY, Opcode.DMA_TRANSPOSE):
            yield make_inst(op, Engine.DMA, (make_hbm("x", 128, 64),), (sb,), free=64)
        elif op is Opcode.SENDRECV:
            yield make_inst(op, Engine.DMA, (sb,), (make_tile("b", 128, 64),), free=64)
        elif op is Opcode.NC_MATMUL:
            yield make_inst(op, Engine.TENSOR, (sb, sb), (ps,), free=64, stationary_free=64,
                            moving_free=64)
        elif op is Opcode.NC_TRANSPOSE:
            yield make_inst(op, Engine.TENSOR, (sb,), (ps,), free=64)
        elif op in (Opcode.IOTA, Opcode.AFFINE_SELECT, Opcode.TENSOR_PARTITION_REDUCE):
            yield make_inst(op, Engine.GPSIMD, (sb,), (sb,), free=64)
        elif op is Opcode.CORE_BARRIER:
            yield make_inst(op, Engine.GPSIMD, (make_hbm("x", 1, 1),), (make_hbm("x", 1, 1),))
        else:  # on the first engine the ISA allows; the Tensor engine writes PSUM
            engine = OPCODES[op].engines[0]
            out = ps if engine is Engine.TENSOR else sb
            yield make_inst(op, engine, (sb, sb), (out,), free=64)


def test_every_opcode_has_a_cost_rule(make_inst, make_tile, make_hbm):
    chip = hw.load_chip("trn1")
    seen = set()
    for i in _every_opcode(make_inst, make_tile, make_hbm):
        kind = COST_RULES[i.opcode].kind
        seen.add(i.opcode)
        if kind in (TRANSFER, SENDRECV):
            assert sim.dma_plan(i, chip, CAL2).piece_s > 0, i.opcode
        elif kind == BARRIER:
            assert engine_cost(i, V2, CAL2) == (0.0, 0.0)
        else:
            core, cal = (V4, CAL4) if i.opcode.value in V4_ONLY else (V2, CAL2)
            assert engine_cost(i, core, cal)[0] > 0, i.opcode
            # a compute rule for every engine the ISA lets it run on
            rule = COST_RULES[i.opcode]
            for engine in OPCODES[i.opcode].engines:
                has = rule.tensor if engine is Engine.TENSOR else rule.stream
                # (collectives: a duration in seconds from tessera.net instead)
                assert has is not None or rule.seconds is not None, (i.opcode, engine)
    assert seen == set(Opcode) == set(COST_RULES) == set(OPCODES)


def test_a_missing_rule_is_an_error_not_a_zero(make_inst, make_tile):
    odd = make_inst(Opcode.TENSOR_COPY, Engine.TENSOR, (make_tile("a", 128, 8),),
                    (make_tile("b", 128, 8),), free=8)
    with pytest.raises(ScheduleError, match="no Tensor-engine cost rule for tensor_copy"):
        engine_cost(odd, V2, CAL2)


def test_traced_matmul_matches_the_formula():
    @nki.jit
    def one_matmul(a, b):
        ta = nl.ndarray((128, 128), a.dtype, buffer=nl.sbuf)
        tb = nl.ndarray((128, 512), b.dtype, buffer=nl.sbuf)
        nisa.dma_copy(ta, a)
        nisa.dma_copy(tb, b)
        ps = nl.ndarray((128, 512), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps, ta, tb)
        return a

    for chip, ghz in (("trn1", 2.8), ("trn2", 2.4)):
        for dtype, factor in ((nl.bfloat16, 1), (nl.float32, 4)):
            p = sim.profile(one_matmul, nki.TensorSpec((128, 128), dtype),
                            nki.TensorSpec((128, 512), dtype), chip=chip, symbolic=True)
            mm = [s for s in p.timeline.instructions if s.opcode is Opcode.NC_MATMUL][0]
            assert mm.busy_s == pytest.approx(factor * 512 / ghz * 1e-9)
            assert p.flops == 2 * 128 * 128 * 512


def test_calibration_entries_have_sources():
    data = yaml.safe_load(CALIBRATION_FILE.read_text())
    entries = list(data["formulas"].items())
    for gen in data["generations"].values():
        entries += list(gen.items())
    for name, entry in entries:
        assert entry["source"].strip() and entry["fitted_on"].strip(), name
    for core in ("nc-v2", "nc-v3", "nc-v4"):
        cal = load_calibration(core)
        assert set(cal.sources) >= {"cross_engine_sync_s", "dma_transfer_overhead_s",
                                    "hbm_strided_efficiency"}


def test_calibration_rejects_unknown_and_missing_keys(tmp_path):
    data = yaml.safe_load(CALIBRATION_FILE.read_text())
    data["generations"]["nc-v2"]["mystery_factor"] = {"value": 1, "source": "x",
                                                      "fitted_on": "y"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(CalibrationError, match="mystery_factor"):
        load_calibration("nc-v2", bad)
    del data["generations"]["nc-v2"]["mystery_factor"]
    del data["generations"]["nc-v2"]["cross_engine_sync_s"]["fitted_on"]
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(CalibrationError, match="fitted_on"):
        load_calibration("nc-v2", bad)
    with pytest.raises(CalibrationError, match="no constant 'speed'"):
        CAL2.with_overrides({"speed": 2})
