"""The time of an in-kernel collective (`nki.collectives`), as `tessera.net` prices it.

A collective instruction occupies its core's collective queue (the DMA engine's compute
queue: collectives run on the DMA rings, so they overlap compute and ordinary DMAs but not
each other) for the time `tessera.net` predicts for that collective inside a compiled graph
(`in_graph=True`), on the kernel's chip's instance topology, for the rank-list's size and the
bytes the instruction moves (`CollectiveAttrs`, in net's byte convention). Each rank's trace
is priced on its own: the instruction's time assumes the other members enter together.

`tessera.net` sits above `tessera.sim` in the layers, so `sim` does not import it: net
registers its pricer here when it is imported (`tessera.net.in_kernel`), and pricing a
collective without it is an error that says so. No collective is ever free.
"""

from __future__ import annotations

from collections.abc import Callable

from tessera.hw import CoreSpec
from tessera.nki.attrs import CollectiveAttrs
from tessera.nki.stream import Instruction
from tessera.sim.errors import ScheduleError

# (net operation, bytes, ranks, chip preset) -> seconds
Pricer = Callable[[str, int, int, str], float]

_pricer: list[Pricer] = []


def set_collective_pricer(pricer: Pricer) -> None:
    """Price in-kernel collectives with `pricer` (tessera.net registers its own)."""
    _pricer[:] = [pricer]


def collective_seconds(inst: Instruction, core: CoreSpec) -> float:
    """The collective's time: `tessera.net`'s in-graph cost of its operation."""
    attrs: CollectiveAttrs = inst.attrs  # type: ignore[assignment]
    if not _pricer:
        raise ScheduleError(f"{inst.opcode.value} at {inst.location}: in-kernel collectives "
                            "are priced by tessera.net; `import tessera.net` before "
                            "scheduling (it registers its pricer with tessera.sim)")
    seconds = _pricer[0](attrs.net_op, attrs.n_bytes, attrs.ranks, attrs.chip)
    if not seconds > 0.0:
        raise ScheduleError(f"{inst.opcode.value} at {inst.location}: the collective pricer "
                            f"returned {seconds!r} s; a collective is never free")
    return float(seconds)
