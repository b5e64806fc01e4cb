"""Plausibility checks run on every loaded preset (and, structurally, after overrides).

Two groups:
- structural: internal consistency that must hold for any hardware, real or what-if
  (PSUM bytes = banks x bank bytes, tiles fit the memories, LNC divides the cores, ...);
- published: aggregate figures printed in the docs agree with the model built from the
  per-core facts (TensorE rows x cols x 2 x clock vs the published per-core peak, chip peak vs
  cores x core peak, SBUF total vs partitions x bytes, instance totals vs chips x chip).
  They run at load only: an override describes hardware nobody has published.

Published figures may deviate by `TOLERANCE` (10%); figures marked `uncertain` (documented
discrepancies, e.g. Trn2's FP32 chip figure 181 vs 8 x 20) by `UNCERTAIN_TOLERANCE`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from tessera.hw.core_specs import (
    AccessSpec,
    CoreSpec,
    DmaSpec,
    EngineSpec,
    MemorySpec,
    TensorEngineSpec,
)
from tessera.hw.enums import Engine, MemoryKind, Precision, TopologyKind
from tessera.hw.errors import PresetError
from tessera.hw.sourced import Status
from tessera.hw.spec_base import Spec
from tessera.hw.system_specs import ChipSpec, GpuSpec, InstanceSpec, TopologySpec
from tessera.hw.units import format_quantity

TOLERANCE = 0.10
UNCERTAIN_TOLERANCE = 0.25
FP32_BYTES = 4


class _Checker:
    def __init__(self, origin: str, published: bool) -> None:
        self.origin = origin
        self.published = published

    def fail(self, path: str, message: str) -> PresetError:
        return PresetError(self.origin, path, message)

    def require(self, ok: bool, path: str, message: str) -> None:
        if not ok:
            raise self.fail(path, message)

    def close(self, spec: Spec, key: str, path: str, model: float, how: str,
              extra_status: Status = Status.PUBLISHED) -> None:
        """Published figure `spec.<key>` must be within tolerance of `model`."""
        sourced = spec.sourced(key)
        if sourced.value is None:
            return
        uncertain = Status.UNCERTAIN in (sourced.status, extra_status)
        limit = UNCERTAIN_TOLERANCE if uncertain else TOLERANCE
        published = float(sourced.value)
        rel = abs(published - model) / published
        if rel > limit:
            name = key.split(".")[0]
            raise self.fail(
                path,
                f"published {format_quantity(name, published)} differs from {how} = "
                f"{format_quantity(name, model)} by {rel:.1%} (limit {limit:.0%})",
            )


def _walk_numbers(spec: Spec, path: str, chk: _Checker) -> None:
    """Every number in every spec is non-negative; recurse into nested specs."""
    for f in dataclasses.fields(spec):
        if f.name in ("sources", "origin"):
            continue
        value = getattr(spec, f.name)
        fpath = f"{path}.{f.name}" if path else f.name
        items: list[tuple[str, Any]] = [(fpath, value)]
        if isinstance(value, tuple):
            items = [(f"{fpath}[{i}]", v) for i, v in enumerate(value)]
        elif hasattr(value, "items") and not isinstance(value, Spec):
            items = [(f"{fpath}.{getattr(k, 'value', k)}", v) for k, v in value.items()]
        for ipath, item in items:
            if isinstance(item, Spec):
                validate_tree(item, ipath, chk)
            elif isinstance(item, (int, float)) and not isinstance(item, bool):
                chk.require(item >= 0, ipath, f"must not be negative, got {item}")


def _tensor(t: TensorEngineSpec, path: str, chk: _Checker) -> None:
    chk.require(t.kind is Engine.TENSOR, f"{path}.kind", "must be 'tensor'")
    chk.require(t.clock_hz > 0 and t.rows > 0 and t.cols > 0, path, "clock and array must be > 0")
    chk.require(Precision.BF16 in t.rate_by_precision, f"{path}.rate_by_precision",
                "needs a bf16 entry (the reference rate)")
    if chk.published:
        for p in t.published_peak_flops:
            chk.require(p in t.rate_by_precision, f"{path}.published_peak_flops.{p.value}",
                        f"no rate_by_precision entry for {p.value}")
            key = f"published_peak_flops.{p.value}"
            how = f"{t.rows} x {t.cols} x 2 x clock x {t.rate_by_precision[p]:g}"
            chk.close(t, key, f"{path}.{key}", t.peak_flops(p), how)


def _engine(e: EngineSpec, path: str, chk: _Checker) -> None:
    chk.require(e.clock_hz > 0, f"{path}.clock_hz", "must be > 0")
    chk.require(e.lanes > 0 and e.elements_per_cycle > 0, path, "lanes and throughput must be > 0")


def _memory(m: MemorySpec, path: str, chk: _Checker) -> None:
    chk.require(m.partitions > 0 and m.bytes_per_partition > 0, path, "geometry must be > 0")
    banked = (m.banks is None, m.bank_bytes_per_partition is None)
    chk.require(banked[0] == banked[1], f"{path}.banks",
                "banks and bank_bytes_per_partition are both set or both unknown")
    if m.banks is not None and m.bank_bytes_per_partition is not None:
        chk.require(
            m.banks * m.bank_bytes_per_partition == m.bytes_per_partition,
            f"{path}.bytes_per_partition",
            f"{m.bytes_per_partition} != banks ({m.banks}) x bank_bytes_per_partition "
            f"({m.bank_bytes_per_partition}); change them together",
        )
    if chk.published and m.published_total_bytes is not None:
        chk.require(
            m.published_total_bytes == m.total_bytes,
            f"{path}.published_total_bytes",
            f"published {m.published_total_bytes} != partitions ({m.partitions}) x "
            f"bytes_per_partition ({m.bytes_per_partition}) = {m.total_bytes}",
        )


def _access(a: AccessSpec, path: str, chk: _Checker) -> None:
    rules = a.partition_start_rules
    chk.require(len(rules) > 0, f"{path}.partition_start_rules", "needs at least one rule")
    sizes = [r.max_partitions for r in rules]
    chk.require(sizes == sorted(set(sizes)), f"{path}.partition_start_rules",
                "rules must be listed by increasing max_partitions")
    for i, r in enumerate(rules):
        chk.require(0 in r.starts, f"{path}.partition_start_rules[{i}].starts", "must allow 0")


def _dma(d: DmaSpec, path: str, chk: _Checker) -> None:
    chk.require(d.engines_per_core > 0, f"{path}.engines_per_core", "must be > 0")
    chk.require(d.engine_effective_bytes_per_s <= d.engine_bytes_per_s,
                f"{path}.engine_effective_bytes_per_s", "exceeds the theoretical engine rate")
    chk.require(d.min_efficient_partition_bytes <= d.saturating_partition_bytes,
                f"{path}.min_efficient_partition_bytes", "exceeds saturating_partition_bytes")


def _core(c: CoreSpec, path: str, chk: _Checker) -> None:
    p = f"{path}." if path else ""
    for kind in (Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD):
        chk.require(c.engine(kind).kind is kind, f"{p}{kind.value}.kind", f"must be {kind.value!r}")
    chk.require(c.sbuf.kind is MemoryKind.SBUF, f"{p}sbuf.kind", "must be 'sbuf'")
    chk.require(c.psum.kind is MemoryKind.PSUM, f"{p}psum.kind", "must be 'psum'")
    chk.require(c.psum.banks is not None, f"{p}psum.banks", "PSUM must be banked")
    t = c.tile
    chk.require(t.pmax <= c.sbuf.partitions and t.pmax <= c.tensor.rows, f"{p}tile.pmax",
                "exceeds SBUF partitions or TensorE rows")
    chk.require(t.stationary_fmax <= c.tensor.cols, f"{p}tile.stationary_fmax",
                "exceeds TensorE columns")
    if c.psum.bank_bytes_per_partition is not None:
        chk.require(t.psum_fmax * FP32_BYTES == c.psum.bank_bytes_per_partition,
                    f"{p}tile.psum_fmax", "must equal one PSUM bank of FP32 elements")
    chk.require(t.moving_fmax <= t.psum_fmax, f"{p}tile.moving_fmax", "exceeds one PSUM bank")
    chk.require(t.engine_psum_fmax * FP32_BYTES <= c.psum.bytes_per_partition,
                f"{p}tile.engine_psum_fmax", "exceeds a PSUM partition")
    last = c.access.partition_start_rules[-1].max_partitions
    chk.require(last == t.pmax, f"{p}access.partition_start_rules",
                f"last rule must cover pmax ({t.pmax}), covers {last}")
    for i, rule in enumerate(c.access.partition_start_rules):
        chk.require(all(s + rule.max_partitions <= t.pmax for s in rule.starts),
                    f"{p}access.partition_start_rules[{i}]", "a start overruns pmax")


def _chip(c: ChipSpec, path: str, chk: _Checker) -> None:
    p = f"{path}." if path else ""
    chk.require(c.physical_cores > 0, f"{p}physical_cores", "must be > 0")
    chk.require(c.lnc_default in c.lnc_allowed, f"{p}lnc_default", "must be one of lnc_allowed")
    for lnc in c.lnc_allowed:
        chk.require(lnc > 0 and c.physical_cores % lnc == 0, f"{p}lnc_allowed",
                    f"LNC {lnc} does not divide {c.physical_cores} cores")
    if not chk.published:
        return
    for prec in c.published_peak_flops:
        key = f"published_peak_flops.{prec.value}"
        per_core = format_quantity("x_flops", c.core_peak_flops(prec))
        chk.close(c, key, p + key, c.peak_flops(prec), f"{c.physical_cores} cores x {per_core}")
    if c.published_sbuf_bytes is not None:
        chk.require(c.published_sbuf_bytes == c.sbuf_bytes, f"{p}published_sbuf_bytes",
                    f"published {c.published_sbuf_bytes} != cores x SBUF = {c.sbuf_bytes}")
    if c.published_dma_engines is not None:
        chk.require(c.published_dma_engines == c.dma_engines, f"{p}published_dma_engines",
                    f"published {c.published_dma_engines} != cores x engines = {c.dma_engines}")


def _topology(t: TopologySpec, path: str, chk: _Checker) -> None:
    ndims = {TopologyKind.TORUS_2D: 2, TopologyKind.TORUS_3D: 3, TopologyKind.RING: 1,
             TopologyKind.NVSWITCH: 1, TopologyKind.SWITCH: 1, TopologyKind.NONE: 1}
    chk.require(len(t.dims) == ndims[t.kind], f"{path}.dims",
                f"a {t.kind.value} topology has {ndims[t.kind]} dimension(s), got {t.dims}")
    if t.kind is TopologyKind.NONE:
        chk.require(t.dims == (1,), f"{path}.dims", "a single chip has dims [1]")


def _instance(inst: InstanceSpec, path: str, chk: _Checker) -> None:
    p = f"{path}." if path else ""
    chk.require(inst.chip_count == inst.topology.size, f"{p}chip_count",
                f"{inst.chip_count} chips but topology dims {inst.topology.dims} "
                f"connect {inst.topology.size}")
    chk.require(inst.nodes >= 1, f"{p}nodes", "must be >= 1")
    if not chk.published:
        return
    chip = inst.chip
    n = inst.chip_count
    for prec in inst.published_peak_flops:
        key = f"published_peak_flops.{prec.value}"
        chip_figure, status = _chip_figure(chip, prec)
        chk.close(inst, key, p + key, n * chip_figure, f"{n} x chip peak", status)
    hbm = chip.hbm
    chk.close(inst, "published_hbm_bytes", f"{p}published_hbm_bytes", n * hbm.capacity_bytes,
              f"{n} x chip HBM", hbm.sourced("capacity_bytes").status)
    chk.close(inst, "published_hbm_bytes_per_s", f"{p}published_hbm_bytes_per_s",
              n * hbm.bytes_per_s, f"{n} x chip HBM bandwidth", hbm.sourced("bytes_per_s").status)


def _chip_figure(chip: ChipSpec | GpuSpec, prec: Precision) -> tuple[float, Status]:
    """The chip's own published peak if it has one (that is what instance tables multiply)."""
    if prec in chip.published_peak_flops:
        s = chip.sourced(f"published_peak_flops.{prec.value}")
        return float(s.value), s.status
    return chip.peak_flops(prec), Status.DERIVED


_CHECKS: dict[type, Callable[[Any, str, _Checker], None]] = {
    TensorEngineSpec: _tensor,
    EngineSpec: _engine,
    MemorySpec: _memory,
    AccessSpec: _access,
    DmaSpec: _dma,
    CoreSpec: _core,
    ChipSpec: _chip,
    TopologySpec: _topology,
    InstanceSpec: _instance,
}


def validate_tree(spec: Spec, path: str, chk: _Checker) -> None:
    """Run the checks for `spec` and everything nested in it."""
    _walk_numbers(spec, path, chk)
    check = _CHECKS.get(type(spec))
    if check is not None:
        check(spec, path, chk)


def validate(spec: Spec, origin: str, published: bool = True) -> None:
    """Raise PresetError (naming `origin` and the key path) if `spec` is implausible."""
    validate_tree(spec, "", _Checker(origin, published))

