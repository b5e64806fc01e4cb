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
    # group: registers
    # group: random
    # group: gather
    # group: select
    # group: collectives
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
    # group: registers
    # group: random
    # group: gather
    # group: select
    # group: collectives
}


@nki.jit
def _two_core_ops(x, call_index: int):
    """LNC=2: a sendrecv between the cores and a barrier (valid: 0, or broken: 1)."""
    core = nl.program_id(0)
    flag = nl.ndarray((1, 1), F32, buffer=nl.shared_hbm)
    mine = nl.ndarray((64, 64), F32, buffer=nl.sbuf)
    theirs = nl.ndarray((64, 64), F32, buffer=nl.sbuf)
    nisa.dma_copy(mine, x[core * 64:(core + 1) * 64, :])
    if call_index == 0:
        nisa.sendrecv(mine, theirs, send_to_rank=1 - core, recv_from_rank=1 - core,
                      pipe_id=0)
        nisa.core_barrier(flag, (0, 1))
    else:
        nisa.sendrecv(mine, theirs, send_to_rank=2, recv_from_rank=1 - core, pipe_id=0)
    return x


def _run(which: int, opcode: Opcode, symbolic: bool):
    @nki.jit
    def one_op(x):
        CALLS[opcode][which](_tiles(x))
        return x

    return nki.trace(one_op, symbolic=symbolic)(
        np.random.default_rng(0).standard_normal((128, 64)).astype(np.float32))


def test_every_opcode_is_in_every_table() -> None:
    assert set(OPCODES) == set(COST_RULES) == set(Opcode)
    assert set(CALLS) | {Opcode.CORE_BARRIER, Opcode.SENDRECV} == set(Opcode)
    for opcode, spec in OPCODES.items():
        assert callable(getattr(nisa, spec.isa)), opcode
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
    profile = sim.schedule(trace, "trn2")  # the cost rule
    positions = [p for p, i in enumerate(trace.instructions) if i.opcode is opcode]
    assert all(profile.timeline.end_s[p] > profile.timeline.start_s[p] for p in positions)


def test_core_to_core_opcodes() -> None:
    x = np.arange(128 * 64, dtype=np.float32).reshape(128, 64)
    trace = nki.trace(_two_core_ops[2])(x, 0)
    ops = {i.opcode for i in trace.instructions}
    assert {Opcode.SENDRECV, Opcode.CORE_BARRIER} <= ops
    for inst in trace.instructions:
        assert type(inst.attrs) is OPCODES[inst.opcode].attrs
    with pytest.raises(NkiError):
        nki.trace(_two_core_ops[2], symbolic=True)(x, 1)
    profile = sim.schedule(trace, "trn2")
    assert COST_RULES[Opcode.CORE_BARRIER].kind == BARRIER
    sends = [p for p, i in enumerate(trace.instructions) if i.opcode is Opcode.SENDRECV]
    assert all(profile.timeline.end_s[p] > profile.timeline.start_s[p] for p in sends)
