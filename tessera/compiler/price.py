"""What each lowered node costs on one NeuronCore (`OpCost`).

* user kernels (`tessera.compiler.overrides`): their own `sim` profile;
* library kernels: `cost.estimate(kernel, shapes, dtype, chip, fidelity)` per `KernelCall`,
  times its `calls`; the busy time per resource comes from the SIMULATED profile (or, at
  ROOFLINE, the bound resource for the op's whole time);
* views: nothing;
* copies and pointwise ops without a kernel: the roofline memory term, `moved_bytes` over
  min(HBM share, DMA engines) plus one DMA fixed latency (`cost.roofline.fixed_overhead_s`);
* host ops: the tensors cross the host link both ways and the host streams them, plus a
  round trip (`calibration/host.yaml`, every constant with its source and status).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from tessera import cost, hw
from tessera.compiler.graph import Node, NodeKind
from tessera.compiler.lowering import Lowered
from tessera.compiler.overrides import profile_user_kernel
from tessera.cost import Fidelity
from tessera.cost.fidelity import Latency
from tessera.cost.roofline import fixed_overhead_s, memory_term
from tessera.kernels.tune import TuneStep

HOST_FILE = Path(__file__).with_name("calibration") / "host.yaml"


class PriceKind:
    """How an op's time was made (a label in the profile)."""

    KERNEL = "kernel"
    VIEW = "view"
    COPY = "copy"
    HOST = "host"


@dataclass(frozen=True)
class OpCost:
    """The predicted time of one node and what bounds it."""

    node: str
    op: str
    kind: NodeKind
    module: str
    priced_as: str  # PriceKind
    kernels: tuple[str, ...]  # library kernels run (with repeats per call)
    time_s: float
    bound: str  # the resource (engine, "hbm", "latency", "host")
    flops: float
    hbm_bytes: float
    busy_s: tuple[tuple[str, float], ...]  # per resource (engine name, "hbm")
    peak_sbuf_bytes: int  # per partition, the largest of its kernels
    phase: str = "forward"  # "backward" for ops of the backward pass (eager profiles)


@functools.cache
def host_constants(path: Path = HOST_FILE) -> dict[str, float]:
    """The host-fallback constants (`calibration/host.yaml`)."""
    data = yaml.safe_load(path.read_text())
    return {k: float(v["value"]) for k, v in data.items()}


def price(node: Node, lowered: Lowered, chip: hw.ChipSpec, fidelity: Fidelity,
          progress: Callable[[TuneStep], None] | None = None) -> OpCost:
    """The cost of one lowered node (see the module docstring). `progress` receives the
    tuner's steps when a library kernel shape is tuned for the first time (SIMULATED)."""
    if lowered.user is not None:
        return _user(node, lowered, chip)
    if lowered.kernels:
        return _kernels(node, lowered, chip, fidelity, progress)
    if lowered.host:
        c = host_constants()
        t = (lowered.moved_bytes / c["host_link_bytes_per_s"]
             + lowered.moved_bytes / c["host_memory_bytes_per_s"] + c["host_sync_s"])
        return OpCost(node.name, node.op, node.kind, node.module, PriceKind.HOST, (), t,
                      "host", 0.0, 0.0, (("host", t),), 0)
    if lowered.is_view:
        return OpCost(node.name, node.op, node.kind, node.module, PriceKind.VIEW, (), 0.0,
                      "none", 0.0, 0.0, (), 0)
    # as cost.roofline prices a memory-bound op: the memory term plus one fixed latency
    memory_s, memory_bound = memory_term(float(lowered.moved_bytes), chip)
    overhead_s = fixed_overhead_s(chip)
    bound = Latency.FIXED if overhead_s > memory_s else memory_bound
    return OpCost(node.name, node.op, node.kind, node.module, PriceKind.COPY, (),
                  memory_s + overhead_s, str(bound.value), 0.0, float(lowered.moved_bytes),
                  ((str(memory_bound.value), memory_s),), 0)


def _user(node: Node, lowered: Lowered, chip: hw.ChipSpec) -> OpCost:
    """A user kernel: its own profile (at SIMULATED fidelity whatever the compile's)."""
    user = lowered.user
    p = profile_user_kernel(user, chip.name)
    busy = tuple(sorted((str(getattr(u.resource, "value", u.resource)), u.busy_s)
                        for u in p.engines))
    bound = str(getattr(p.bound, "value", p.bound))
    return OpCost(node.name, node.op, node.kind, node.module, PriceKind.KERNEL,
                  (f"user:{user.name}",), p.total_s, bound, p.flops,
                  float(p.hbm_read_bytes + p.hbm_write_bytes), busy, p.peak_sbuf_bytes)


def _kernels(node: Node, lowered: Lowered, chip: hw.ChipSpec, fidelity: Fidelity,
             progress: Callable[[TuneStep], None] | None) -> OpCost:
    total = flops = hbm = 0.0
    busy: dict[str, float] = {}
    names: list[str] = []
    peak_sbuf = 0
    bound_time: dict[str, float] = {}
    for call in lowered.kernels:
        e = cost.estimate(call.kernel, dict(call.shapes), call.dtype, chip.name, fidelity,
                          progress=progress)
        times = call.calls * call.factor
        total += e.time_s * times
        flops += e.flops * times
        hbm += e.hbm_bytes * times
        names += [call.kernel] * call.calls
        bound = str(getattr(e.bound, "value", e.bound))
        bound_time[bound] = bound_time.get(bound, 0.0) + e.time_s * times
        if e.simulated is not None:
            peak_sbuf = max(peak_sbuf, e.simulated.peak_sbuf_bytes)
            for r, b in e.simulated.busy_s.items():
                key = str(getattr(r, "value", r))
                busy[key] = busy.get(key, 0.0) + b * times
        else:
            busy[bound] = busy.get(bound, 0.0) + e.time_s * times
    bound = max(bound_time, key=bound_time.__getitem__)
    return OpCost(node.name, node.op, node.kind, node.module, PriceKind.KERNEL, tuple(names),
                  total, bound, flops, hbm, tuple(sorted(busy.items())), peak_sbuf)


