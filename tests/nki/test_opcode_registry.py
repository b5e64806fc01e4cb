"""One definition per op: every opcode has a functional rule and a validation rule (its
`nki.isa` function), an attribute type and engines (`OPCODES`), and a cost rule
(`sim.cost_rules.COST_RULES`). Each is exercised here, not only looked up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass

import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki, sim
from tessera.nki.errors import NkiError
from tessera.nki.opcodes import OPCODES
from tessera.nki.stream import Opcode
from tessera.sim.cost_rules import BARRIER, COST_RULES

F32 = nl.float32


def _tiles(x):
    t = {n: nl.ndarray((128, 64), F32, buffer=nl.sbuf) for n in "abc"}
    for n in "ab":
        nisa.dma_copy(t[n], x)
    t["col"] = nl.ndarray((128, 1), F32, buffer=nl.sbuf)
    t["ps"] = nl.ndarray((128, 64), F32, buffer=nl.psum)
    t["st"] = nl.ndarray((128, 128), nl.bfloat16, buffer=nl.sbuf)
    t["mv"] = nl.ndarray((128, 64), nl.bfloat16, buffer=nl.sbuf)
    nisa.memset(t["st"], 1.0)
    nisa.memset(t["mv"], 1.0)
    t["pt"] = nl.ndarray((64, 128), F32, buffer=nl.psum)
    t["i32"] = nl.ndarray((128, 64), nl.int32, buffer=nl.sbuf)
    t["stats"] = nl.ndarray((128, 6), F32, buffer=nl.sbuf)
    t["aggr"] = nl.ndarray((128, 2), F32, buffer=nl.sbuf)
    t["row"] = nl.ndarray((1, 64), F32, buffer=nl.sbuf)
    t["pred"] = nl.ndarray((128, 64), nl.uint8, buffer=nl.sbuf)
    nisa.memset(t["pred"], 1)
    t["tr"] = nl.ndarray((64, 128), F32, buffer=nl.sbuf)
    t["u32"] = nl.ndarray((128, 8), nl.uint32, buffer=nl.sbuf)
    t["nz"] = nl.ndarray((128, 65), nl.int32, buffer=nl.sbuf)
    # group: mx
    t["mxsrc"] = nl.ndarray((128, 64), nl.bfloat16, buffer=nl.sbuf)
    nisa.tensor_copy(t["mxsrc"], t["a"])
    t["mxq"] = nl.ndarray((128, 16), nl.float8_e4m3fn_x4, buffer=nl.sbuf)
    nisa.memset(t["mxq"], 0)
    t["mxs"] = nl.ndarray((128, 16), nl.uint8, buffer=nl.sbuf)
    nisa.memset(t["mxs"], 127)
    t["mxps"] = nl.ndarray((16, 16), F32, buffer=nl.psum)
    # group: registers
    t["reg32"] = nl.ndarray((1, 1), nl.int32, buffer=nl.sbuf)
    nisa.memset(t["reg32"], 3)
    t["dyn"] = t["a"].ap([[64, 128], [1, 16]], scalar_offset=t["reg32"], indirect_dim=1)
    # group: random
    t["rs6"] = nl.ndarray((128, 6), nl.uint32, buffer=nl.sbuf)
    nisa.memset(t["rs6"], 5)
    t["seed"] = nl.ndarray((1, 1), nl.int32, buffer=nl.sbuf)
    nisa.memset(t["seed"], 7)
    # group: gather
    t["gidx"] = nl.ndarray((128, 8), nl.uint32, buffer=nl.sbuf)
    nisa.memset(t["gidx"], 3)
    t["lidx"] = nl.ndarray((128, 1), nl.uint16, buffer=nl.sbuf)
    nisa.memset(t["lidx"], 2)
    # group: select
    t["ids"] = nl.ndarray((1, 64), F32, buffer=nl.sbuf)
    nisa.memset(t["ids"], 2.0)
    t["bounds"] = nl.ndarray((1, 2, 64), F32, buffer=nl.sbuf)
    # group: collectives
    t["cc_src"] = nl.ndarray((128, 64), F32, buffer=nl.private_hbm)
    nisa.dma_copy(t["cc_src"], x)
    t["cc_dst"] = nl.ndarray((128, 64), F32, buffer=nl.shared_hbm)
    t["cc_meta"] = nl.ndarray((3, 1), nl.uint32, buffer=nl.shared_hbm)  # all_to_all_v: 0s
    t["cc_meta0"] = nl.ndarray((3, 1), nl.uint32, buffer=nl.sbuf)
    nisa.memset(t["cc_meta0"], 0)
    nisa.dma_copy(t["cc_meta"], t["cc_meta0"])
    import tessera.net  # noqa: F401 - registers the pricer of nki.collectives with sim

    t["cc"], t["rg"] = nki.collectives, nki.collectives.ReplicaGroup([[0]])
    t["x"] = x
    return t


# opcode -> (a valid call, a call that breaks a rule of the instruction)
CALLS: dict[Opcode, tuple[Callable, Callable]] = {
    Opcode.NC_MATMUL: (lambda t: nisa.nc_matmul(t["ps"], t["st"], t["mv"]),
                       lambda t: nisa.nc_matmul(t["c"], t["st"], t["mv"])),
    Opcode.NC_TRANSPOSE: (lambda t: nisa.nc_transpose(t["pt"], t["a"]),
                          lambda t: nisa.nc_transpose(t["ps"], t["a"])),
    Opcode.ACTIVATION: (lambda t: nisa.activation(t["c"], nl.exp, t["a"]),
                        lambda t: nisa.activation(t["x"], nl.exp, t["a"])),
    Opcode.ACTIVATION_REDUCE: (
        lambda t: nisa.activation_reduce(t["c"], nl.exp, t["a"], nl.add, t["col"]),
        lambda t: nisa.activation_reduce(t["c"], nl.exp, t["a"], nl.add, t["b"])),
    Opcode.TENSOR_TENSOR: (lambda t: nisa.tensor_tensor(t["c"], t["a"], t["b"], nl.add),
                           lambda t: nisa.tensor_tensor(t["c"], t["a"], t["col"], nl.add)),
    Opcode.TENSOR_SCALAR: (lambda t: nisa.tensor_scalar(t["c"], t["a"], nl.multiply, 2.0),
                           lambda t: nisa.tensor_scalar(t["x"], t["a"], nl.multiply, 2.0)),
    Opcode.SCALAR_TENSOR_TENSOR: (
        lambda t: nisa.scalar_tensor_tensor(t["c"], t["a"], nl.multiply, 2.0, nl.add, t["b"]),
        lambda t: nisa.scalar_tensor_tensor(t["c"], t["a"], nl.multiply, 2.0, nl.add,
                                            t["col"])),
    Opcode.TENSOR_REDUCE: (lambda t: nisa.tensor_reduce(t["col"], nl.add, t["a"], axis=1),
                           lambda t: nisa.tensor_reduce(t["c"], nl.add, t["a"], axis=1)),
    Opcode.TENSOR_COPY: (lambda t: nisa.tensor_copy(t["c"], t["a"]),
                         lambda t: nisa.tensor_copy(t["col"], t["a"])),
    Opcode.MEMSET: (lambda t: nisa.memset(t["c"], 0.0),
                    lambda t: nisa.memset(t["x"], 0.0)),
    Opcode.IOTA: (lambda t: nisa.iota(t["i32"], [[1, 64]]),
                  lambda t: nisa.iota(t["i32"], [[1, 65]])),
    Opcode.AFFINE_SELECT: (
        lambda t: nisa.affine_select(t["c"], [[-1, 64]], 1, t["a"], 0.0),
        lambda t: nisa.affine_select(t["c"], [[-1, 64]], 1, t["a"], t["b"])),
    Opcode.RECIPROCAL: (lambda t: nisa.reciprocal(t["c"], t["a"]),
                        lambda t: nisa.reciprocal(t["col"], t["a"])),
    Opcode.DMA_COPY: (lambda t: nisa.dma_copy(t["c"], t["x"]),
                      lambda t: nisa.dma_copy(t["col"], t["x"])),
    Opcode.DMA_TRANSPOSE: (lambda t: nisa.dma_transpose(t["tr"], t["x"]),
                           lambda t: nisa.dma_transpose(t["pt"], t["x"])),
    Opcode.TENSOR_SCALAR_REDUCE: (
        lambda t: nisa.tensor_scalar_reduce(t["c"], t["a"], nl.multiply, 2.0, nl.add,
                                            t["col"]),
        lambda t: nisa.tensor_scalar_reduce(t["c"], t["a"], nl.multiply, 2.0, nl.add,
                                            t["b"])),
    Opcode.TENSOR_TENSOR_SCAN: (
        lambda t: nisa.tensor_tensor_scan(t["c"], t["a"], t["b"], 0.0, nl.multiply, nl.add),
        lambda t: nisa.tensor_tensor_scan(t["c"], t["a"], t["col"], 0.0, nl.multiply,
                                          nl.add)),
    Opcode.BN_STATS: (lambda t: nisa.bn_stats(t["stats"], t["a"]),
                      lambda t: nisa.bn_stats(t["aggr"], t["a"])),
    Opcode.BN_AGGR: (lambda t: nisa.bn_aggr(t["aggr"], t["stats"]),
                     lambda t: nisa.bn_aggr(t["aggr"], t["a"])),
    Opcode.TENSOR_COPY_PREDICATED: (
        lambda t: nisa.tensor_copy_predicated(t["c"], t["a"], t["pred"]),
        lambda t: nisa.tensor_copy_predicated(t["c"], t["a"], t["col"])),
    Opcode.TENSOR_PARTITION_REDUCE: (
        lambda t: nisa.tensor_partition_reduce(t["row"], nl.add, t["a"]),
        lambda t: nisa.tensor_partition_reduce(t["c"], nl.add, t["a"])),
    Opcode.MAX8: (lambda t: nisa.max8(t["c"][:, 0:8], t["a"]),
                  lambda t: nisa.max8(t["col"], t["a"])),
    Opcode.NC_FIND_INDEX8: (lambda t: nisa.nc_find_index8(t["u32"], t["a"], t["a"][:, 0:8]),
                            lambda t: nisa.nc_find_index8(t["c"][:, 0:8], t["a"],
                                                          t["a"][:, 0:8])),
    Opcode.NC_MATCH_REPLACE8: (
        lambda t: nisa.nc_match_replace8(t["c"], t["a"], t["a"][:, 0:8], 0.0, t["u32"]),
        lambda t: nisa.nc_match_replace8(t["c"], t["a"], t["col"], 0.0)),
    Opcode.NONZERO_WITH_COUNT: (lambda t: nisa.nonzero_with_count(t["nz"], t["a"]),
                                lambda t: nisa.nonzero_with_count(t["i32"], t["a"])),
    # group: mx
    Opcode.QUANTIZE_MX: (lambda t: nisa.quantize_mx(t["mxq"], t["mxsrc"], t["mxs"]),
                         lambda t: nisa.quantize_mx(t["mxq"], t["a"], t["mxs"])),
    Opcode.NC_MATMUL_MX: (
        lambda t: nisa.nc_matmul_mx(t["mxps"], t["mxq"], t["mxq"], t["mxs"], t["mxs"]),
        lambda t: nisa.nc_matmul_mx(t["mxps"], t["mxsrc"][:, 0:16], t["mxq"], t["mxs"],
                                    t["mxs"])),
    # group: registers
    Opcode.REGISTER_ALLOC: (lambda t: nisa.register_alloc(5),
                            lambda t: nisa.register_alloc(2**40)),
    Opcode.REGISTER_MOVE: (lambda t: nisa.register_move(nisa.register_alloc(), 7),
                           lambda t: nisa.register_move(nisa.register_alloc(), 1.5)),
    Opcode.REGISTER_LOAD: (lambda t: nisa.register_load(nisa.register_alloc(), t["reg32"]),
                           lambda t: nisa.register_load(nisa.register_alloc(), t["a"])),
    Opcode.REGISTER_STORE: (lambda t: nisa.register_store(t["reg32"], nisa.register_alloc(4)),
                            lambda t: nisa.register_store(t["a"], nisa.register_alloc(4))),
    Opcode.TENSOR_COPY_DYNAMIC_SRC: (
        lambda t: nisa.tensor_copy_dynamic_src(t["c"][:, 0:16], t["dyn"]),
        lambda t: nisa.tensor_copy_dynamic_src(t["c"][:, 0:8], t["dyn"])),
    Opcode.TENSOR_COPY_DYNAMIC_DST: (
        lambda t: nisa.tensor_copy_dynamic_dst(t["dyn"], t["b"][:, 0:16]),
        lambda t: nisa.tensor_copy_dynamic_dst(t["dyn"], t["ps"][:, 0:16],
                                               engine=nisa.gpsimd_engine)),
    # group: random
    Opcode.RNG: (lambda t: nisa.rng(t["u32"]), lambda t: nisa.rng(t["c"])),
    Opcode.RAND2: (lambda t: nisa.rand2(t["c"], 0.0, 1.0),  # NeuronCore-v4+ only
                   lambda t: nisa.rand2(t["c"], 1.0, 0.0)),
    Opcode.RAND_SET_STATE: (lambda t: nisa.rand_set_state(t["rs6"]),
                            lambda t: nisa.rand_set_state(t["u32"])),
    Opcode.RAND_GET_STATE: (lambda t: nisa.rand_get_state(t["rs6"]),
                            lambda t: nisa.rand_get_state(t["nz"][:, 0:6])),
    Opcode.SET_RNG_SEED: (lambda t: nisa.set_rng_seed(t["seed"]),
                          lambda t: nisa.set_rng_seed(t["col"])),
    Opcode.DROPOUT: (lambda t: nisa.dropout(t["c"], t["a"], 0.5),
                     lambda t: nisa.dropout(t["c"], t["a"], 2.0)),
    # group: gather
    Opcode.LOCAL_GATHER: (lambda t: nisa.local_gather(t["c"][:, 0:16], t["a"], t["lidx"]),
                          lambda t: nisa.local_gather(t["c"][:, 0:48], t["a"], t["lidx"],
                                                      num_elem_per_idx=3)),
    Opcode.NC_N_GATHER: (lambda t: nisa.nc_n_gather(t["c"][:, 0:8], t["a"], t["gidx"]),
                         lambda t: nisa.nc_n_gather(t["c"][:, 0:1], t["a"], t["col"])),
    Opcode.NC_STREAM_SHUFFLE: (lambda t: nisa.nc_stream_shuffle(t["c"], t["a"], [0] * 32),
                               lambda t: nisa.nc_stream_shuffle(t["c"], t["a"], [0] * 31)),
    Opcode.DMA_COMPUTE: (lambda t: nisa.dma_compute(t["c"], [t["a"], t["x"]], nl.add),
                         lambda t: nisa.dma_compute(t["c"], [t["a"], t["x"]], nl.maximum)),
    # group: select
    Opcode.RANGE_SELECT: (
        lambda t: nisa.range_select(t["c"], t["a"], nl.greater_equal, nl.less, 0.0, 9.0,
                                    reduce_res=t["col"]),
        lambda t: nisa.range_select(t["c"], t["a"], nl.greater_equal, nl.less, 0.0, 9.0,
                                    on_false_value=0.0)),
    Opcode.SELECT_REDUCE: (
        lambda t: nisa.select_reduce(t["c"], t["pred"], t["a"], -1.0, reduce_res=t["col"],
                                     reduce_cmd=nisa.reduce_cmd.reset_reduce),
        lambda t: nisa.select_reduce(t["c"], t["a"], t["b"], -1.0)),
    Opcode.SEQUENCE_BOUNDS: (lambda t: nisa.sequence_bounds(t["bounds"], t["ids"]),
                             lambda t: nisa.sequence_bounds(t["row"], t["ids"])),
    Opcode.TENSOR_SCALAR_CUMULATIVE: (
        lambda t: nisa.tensor_scalar_cumulative(t["c"], t["a"], nl.multiply, nl.add, 2.0),
        lambda t: nisa.tensor_scalar_cumulative(t["c"], t["a"], nl.multiply, nl.divide, 2.0)),
    Opcode.EXPONENTIAL: (  # NeuronCore-v4+ only
        lambda t: nisa.exponential(t["c"], t["a"], max_value=t["col"]),
        lambda t: nisa.exponential(t["c"], t["a"], max_value=t["i32"])),
    # group: collectives
    Opcode.ALL_REDUCE: (
        lambda t: t["cc"].all_reduce([t["cc_src"]], [t["cc_dst"]], t["rg"], nl.add),
        lambda t: t["cc"].all_reduce([t["cc_src"]], [t["cc_dst"]], t["rg"], nl.multiply)),
    Opcode.ALL_GATHER: (
        lambda t: t["cc"].all_gather([t["cc_src"]], [t["cc_dst"]], t["rg"], 0),
        lambda t: t["cc"].all_gather([t["cc_src"]], [t["cc_dst"]], t["rg"], 1)),
    Opcode.REDUCE_SCATTER: (
        lambda t: t["cc"].reduce_scatter([t["a"]], [t["c"]], t["rg"], 0, nl.maximum),
        lambda t: t["cc"].reduce_scatter([t["ps"]], [t["c"]], t["rg"], 0, nl.maximum)),
    Opcode.ALL_TO_ALL: (
        lambda t: t["cc"].all_to_all([t["cc_src"]], [t["cc_dst"]], t["rg"], 0),
        lambda t: t["cc"].all_to_all([t["a"]], [t["c"]], t["rg"], 0)),
    Opcode.ALL_TO_ALL_V: (
        lambda t: t["cc"].all_to_all_v([t["cc_src"]], [t["cc_dst"]], t["rg"], t["cc_meta"]),
        lambda t: t["cc"].all_to_all_v([t["cc_src"]], [t["cc_dst"]], t["rg"], t["i32"])),
    Opcode.COLLECTIVE_PERMUTE: (
        lambda t: t["cc"].collective_permute([t["cc_src"]], [t["cc_dst"]], [(0, 0)]),
        lambda t: t["cc"].collective_permute([t["cc_src"]], [t["cc_dst"]], [(0, 0), (1, 0)])),
    Opcode.COLLECTIVE_PERMUTE_IMPLICIT: (
        lambda t: t["cc"].collective_permute_implicit([[t["a"]]], [[t["c"]]], t["rg"]),
        lambda t: t["cc"].collective_permute_implicit([[t["a"]]], [[t["c"]]], t["rg"], [1])),
    Opcode.COLLECTIVE_PERMUTE_IMPLICIT_REDUCE: (
        lambda t: t["cc"].collective_permute_implicit_reduce([[t["a"]]], [[t["b"]]], [[t["c"]]],
                                                           t["rg"], nl.add),
        lambda t: t["cc"].collective_permute_implicit_reduce([[t["a"]]], [[t["b"]]],
                                                           [[t["col"]]], t["rg"], nl.add)),
}


@nki.jit
def _two_core_ops(x, call_index: int):
    """LNC=2: a sendrecv, a sendrecv_compute (nki.lnc) between the cores and a barrier
    (valid: 0, or broken: 1; 2: a sendrecv_compute that breaks a rule)."""
    core = nl.program_id(0)
    flag = nl.ndarray((1, 1), F32, buffer=nl.shared_hbm)
    mine = nl.ndarray((64, 64), F32, buffer=nl.sbuf)
    theirs = nl.ndarray((64, 64), F32, buffer=nl.sbuf)
    nisa.dma_copy(mine, x[core * 64:(core + 1) * 64, :])
    if call_index == 0:
        nisa.sendrecv(mine, theirs, send_to_rank=1 - core, recv_from_rank=1 - core,
                      pipe_id=0)
        nisa.core_barrier(flag, (0, 1))
        nki.lnc.sendrecv_compute(mine, theirs, 1 - core, 1 - core, nl.add)
    elif call_index == 2:
        nki.lnc.sendrecv_compute(mine, theirs, 1 - core, 1 - core, nl.multiply)
    else:
        nisa.sendrecv(mine, theirs, send_to_rank=2, recv_from_rank=1 - core, pipe_id=0)
    return x


# opcodes that need an LNC=2 launch: exercised by test_core_to_core_opcodes, not CALLS
CORE_TO_CORE = (Opcode.CORE_BARRIER, Opcode.SENDRECV, Opcode.SENDRECV_COMPUTE)

# instructions documented for NeuronCore-v4 and newer run on trn3; the rest on trn2
V4_ONLY = {"rand2", "exponential", "nc_matmul_mx", "quantize_mx"}


def _chip(opcode: Opcode) -> str:
    return "trn3" if opcode.value in V4_ONLY else "trn2"


def _run(which: int, opcode: Opcode, symbolic: bool):
    @nki.jit
    def one_op(x):
        CALLS[opcode][which](_tiles(x))
        return x

    return nki.trace(one_op, symbolic=symbolic, chip=_chip(opcode))(
        np.random.default_rng(0).standard_normal((128, 64)).astype(np.float32))


def test_every_opcode_is_in_every_table() -> None:
    assert set(OPCODES) == set(COST_RULES) == set(Opcode)
    assert set(CALLS) | set(CORE_TO_CORE) == set(Opcode)
    for opcode, spec in OPCODES.items():
        assert callable(getattr(nisa, spec.isa, None) or getattr(nki.collectives, spec.isa, None)
                        or getattr(nki.lnc, spec.isa)), opcode
        assert is_dataclass(spec.attrs) and spec.attrs.__dataclass_params__.frozen
        assert all(f.type for f in fields(spec.attrs))


@pytest.mark.parametrize("opcode", sorted(CALLS, key=lambda o: o.value), ids=lambda o: o.value)
def test_each_opcode_runs_is_checked_and_is_priced(opcode: Opcode) -> None:
    trace = _run(0, opcode, symbolic=False)  # the functional rule runs on values
    issued = [i for i in trace.instructions if i.opcode is opcode]
    assert issued, f"nisa.{opcode.value} recorded no {opcode.value}"
    spec = OPCODES[opcode]
    for inst in issued:
        assert type(inst.attrs) is spec.attrs and inst.engine in spec.engines
    with pytest.raises(NkiError):  # the validation rule
        _run(1, opcode, symbolic=True)
    profile = sim.schedule(trace, _chip(opcode))  # the cost rule
    positions = [p for p, i in enumerate(trace.instructions) if i.opcode is opcode]
    assert all(profile.timeline.end_s[p] > profile.timeline.start_s[p] for p in positions)


def test_core_to_core_opcodes() -> None:
    x = np.arange(128 * 64, dtype=np.float32).reshape(128, 64)
    trace = nki.trace(_two_core_ops[2])(x, 0)
    ops = {i.opcode for i in trace.instructions}
    assert set(CORE_TO_CORE) <= ops
    for inst in trace.instructions:
        assert type(inst.attrs) is OPCODES[inst.opcode].attrs
    for broken in (1, 2):
        with pytest.raises(NkiError):
            nki.trace(_two_core_ops[2], symbolic=True)(x, broken)
    profile = sim.schedule(trace, "trn2")
    assert COST_RULES[Opcode.CORE_BARRIER].kind == BARRIER
    sends = [p for p, i in enumerate(trace.instructions)
             if i.opcode in (Opcode.SENDRECV, Opcode.SENDRECV_COMPUTE)]
    assert all(profile.timeline.end_s[p] > profile.timeline.start_s[p] for p in sends)
