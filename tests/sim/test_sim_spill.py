"""Allocation as the compile config asks: fragmentation, spilling and its failures.

trn1 has 192 KiB of SBUF per partition. Expected transfers are whole tiles: a
[128, 25600] float32 tile is 100 KiB per partition, 12.5 MiB in all.
"""

from __future__ import annotations

import pytest

from tessera import nki, sim
from tessera.cli.profile_cmd import spill_lines
from tessera.nki import isa as nisa
from tessera.nki import language as nl
from tessera.nki.buffers import Buffer
from tessera.nki.compiler import Allocation, AllocationMode, CompileConfig
from tessera.nki.errors import CapacityError as NkiCapacityError
from tessera.report.profile_json import profile_report

F32 = nl.float32
BIG = (128, 25600)  # 100 KiB per partition: two do not fit in 192 KiB
TILE_BYTES = 128 * 25600 * 4
ROOMY = {"core.sbuf.bytes_per_partition": 262144}


def held_across(x):
    """`a` stays live while `b` is loaded and used: one of them must leave SBUF."""
    a = nl.ndarray(BIG, F32, buffer=nl.sbuf)
    b = nl.ndarray(BIG, F32, buffer=nl.sbuf)
    nisa.dma_copy(a, x)
    nisa.dma_copy(b, x)  # needs a's room
    nisa.tensor_scalar(b, b, op0=nl.multiply, operand0=2.0)
    o1 = nl.ndarray(x.shape, F32, buffer=nl.shared_hbm)
    nisa.dma_copy(o1, b)
    nisa.tensor_scalar(a, a, op0=nl.add, operand0=1.0)  # a comes back for this
    o2 = nl.ndarray(x.shape, F32, buffer=nl.shared_hbm)
    nisa.dma_copy(o2, a)
    return o2


SPEC = nki.TensorSpec(BIG, F32)


def _line(fn, text: str) -> int:
    import inspect

    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


def test_a_tile_that_does_not_fit_is_spilled_and_reloaded():
    spilled = sim.profile(held_across, SPEC, chip="trn1", symbolic=True)
    roomy = sim.profile(held_across, SPEC, chip="trn1", symbolic=True, overrides=ROOMY)
    assert roomy.spills == () and roomy.instructions == 6
    (sp,) = spilled.spills
    assert sp.tensor == "sb0" and sp.shape == BIG and sp.tile_bytes == TILE_BYTES
    assert sp.created_at.line == _line(held_across, "a = nl.ndarray")
    assert sp.needed_at.line == _line(held_across, "nisa.dma_copy(b, x)")
    assert sp.reloaded_for.line == _line(held_across, "operand0=1.0")
    assert spilled.instructions == 8  # a store and a reload inserted
    assert spilled.spill_bytes == TILE_BYTES
    assert spilled.hbm_write_bytes == roomy.hbm_write_bytes + TILE_BYTES
    assert spilled.hbm_read_bytes == roomy.hbm_read_bytes + TILE_BYTES
    assert spilled.total_s > roomy.total_s
    assert any("SBUF spilled: 1 tile" in n for n in spilled.notes)


def test_spill_dmas_carry_the_dependencies():
    p = sim.profile(held_across, SPEC, chip="trn1", symbolic=True)
    ins = p.timeline.instructions
    sp = p.spills[0]
    store, reload = ins[sp.store_position], ins[sp.reload_position]
    load_a, load_b = ins[0], ins[sp.store_position + 1]
    use_a = ins[sp.reload_position + 1]
    assert store.opcode.value == reload.opcode.value == "dma_copy"
    assert store.start_s >= load_a.end_s  # stores what the load wrote
    assert load_b.start_s >= store.end_s  # b takes a's bytes once they are out
    assert reload.start_s >= store.end_s  # reads the spilled copy
    assert use_a.start_s >= reload.end_s
    flat = p.timeline.stream
    names = {ap.tensor for ap in flat.instructions[sp.reload_position].writes}
    assert names == {"sb0~0"}  # the reloaded tile is a tensor of its own
    assert all(ap.tensor != "sb0" for ap in flat.instructions[sp.reload_position + 1].reads)


def test_spills_in_a_loop_converge_and_are_reported():
    def keep_all(x):
        tiles = []
        for _ in range(4):  # four 64 KiB tiles kept for the end: 256 KiB > 192 KiB
            t = nl.ndarray((128, 16384), F32, buffer=nl.sbuf)
            nisa.dma_copy(t, x)
            tiles.append(t)
        out = nl.ndarray((128, 16384), F32, buffer=nl.shared_hbm)
        for t in tiles:
            nisa.tensor_scalar(t, t, op0=nl.add, operand0=1.0)
            nisa.dma_copy(out, t)
        return out

    p = sim.profile(keep_all, nki.TensorSpec((128, 16384), F32), chip="trn1", symbolic=True)
    assert 1 <= len(p.spills) <= 4
    assert p.peak_sbuf_bytes <= 196608
    assert p.instructions == 12 + 2 * len(p.spills)
    lines = spill_lines(p)
    assert f"{len(p.spills)} tile(s)" in lines[0] and "keep_all" not in lines[0]
    assert "test_sim_spill.py" in lines[1]
    report = profile_report(p, kernel="keep_all")
    assert report["spill_bytes"] == p.spill_bytes
    assert len(report["spills"]) == len(p.spills)


def test_what_one_instruction_needs_at_once_cannot_be_spilled():
    def together(x):
        a = nl.ndarray(BIG, F32, buffer=nl.sbuf)
        b = nl.ndarray(BIG, F32, buffer=nl.sbuf)
        nisa.dma_copy(a, x)
        nisa.dma_copy(b, x)
        nisa.tensor_tensor(a, a, b, op=nl.add)
        return x

    with pytest.raises(sim.SbufCapacityError, match="even after spilling"):
        sim.profile(together, SPEC, chip="trn1", symbolic=True)


def test_a_tile_larger_than_a_partition_fails():
    def too_big(x):
        t = nl.ndarray((128, 51200), F32, buffer=nl.sbuf)  # 200 KiB per partition
        nisa.dma_copy(t, x)
        return x

    # refused where the kernel creates it, naming the line
    with pytest.raises(NkiCapacityError, match=r"test_sim_spill.py:\d+: tensor sb0.*196608"):
        sim.profile(too_big, nki.TensorSpec((128, 51200), F32), chip="trn1", symbolic=True)


def test_linear_allocation_fails_without_its_fallback():
    strict = nki.jit(held_across, compile_config=CompileConfig(
        allocation=Allocation.LINEAR, nki_alloc_fallback=False))
    with pytest.raises(sim.SbufCapacityError, match="SBUF capacity exceeded.*sb1"):
        sim.profile(strict, SPEC, chip="trn1", symbolic=True)
    fallback = nki.jit(held_across, compile_config=CompileConfig(allocation=Allocation.LINEAR))
    p = sim.profile(fallback, SPEC, chip="trn1", symbolic=True)
    assert len(p.spills) == 1
    assert any("nki_alloc_fallback" in n for n in p.notes)


def fragmenting(x, s):
    """Five 32 KiB tiles, each leaving a 2 KiB tile live to the end between the gaps its
    death opens, then a 96 KiB tile: 106 KiB live in all, no 96 KiB run left by next fit."""
    smalls = []
    for _ in range(5):
        big = nl.ndarray((128, 8192), F32, buffer=nl.sbuf)
        nisa.dma_copy(big, x)
        small = nl.ndarray((128, 512), F32, buffer=nl.sbuf)
        nisa.tensor_copy(small, big[:, 0:512])
        smalls.append(small)
    huge = nl.ndarray((128, 24576), F32, buffer=nl.sbuf)
    nisa.dma_copy(huge, s)
    out = nl.ndarray((128, 512), F32, buffer=nl.shared_hbm)
    for small in smalls:
        nisa.tensor_tensor(small, small, huge[:, 0:512], op=nl.add)
        nisa.dma_copy(out, small)
    return out


def test_fragmentation_alone_neither_fails_nor_spills():
    specs = (nki.TensorSpec((128, 8192), F32), nki.TensorSpec((128, 24576), F32))
    trace = nki.trace(fragmenting, chip="trn1")(*specs)
    with pytest.raises(sim.SbufCapacityError, match="fragmentation"):
        sim.allocate(sim.flatten(trace.instructions, trace.tensors), trace.chip)
    p = sim.schedule(trace)
    assert p.spills == ()
    assert any("fragmented" in n for n in p.notes)
    sbuf = [pl for pl in p.allocation.placements if pl.buffer is Buffer.SBUF]
    # every pair of tiles live at once occupies disjoint bytes
    for i, a in enumerate(sbuf):
        for b in sbuf[i + 1:]:
            if a.first <= b.last and b.first <= a.last:
                assert (a.start_bytes + a.size_bytes <= b.start_bytes
                        or b.start_bytes + b.size_bytes <= a.start_bytes), (a, b)


def test_linear_allocation_modes_reuse_freed_memory_differently():
    def hole(x):
        a = nl.ndarray((128, 1024), F32, buffer=nl.sbuf)  # 4 KiB, dies at once
        nisa.dma_copy(a, x)
        b = nl.ndarray((128, 2048), F32, buffer=nl.sbuf)  # 8 KiB, live to the end
        nisa.tensor_copy(b[:, 0:1024], a)
        c = nl.ndarray((128, 1024), F32, buffer=nl.sbuf)  # 4 KiB: a's hole fits it
        nisa.tensor_copy(c, b[:, 0:1024])
        out = nl.ndarray((128, 1024), F32, buffer=nl.shared_hbm)
        nisa.dma_copy(out, c)
        nisa.dma_copy(out, b[:, 1024:2048])
        return out

    def start_of_c(mode):
        k = nki.jit(hole, compile_config=CompileConfig(
            allocation=Allocation.LINEAR, experimental_allocation_mode=mode))
        p = sim.profile(k, nki.TensorSpec((128, 1024), F32), chip="trn1", symbolic=True)
        return {pl.name: pl.start_bytes for pl in p.allocation.placements}["sb2"]

    assert start_of_c(AllocationMode.RING) == 12288  # a fresh address after b
    assert start_of_c(AllocationMode.MAX_REUSE) == 0  # best fit: a's freed bytes
    assert start_of_c(AllocationMode.FAST) == 0
