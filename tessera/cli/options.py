"""Options several commands share: the chip preset, and where kernel shapes are tuned
(`--workers`, `--ray`: `tessera compile` now, the planner later)."""

from __future__ import annotations

from typing import Annotated

import typer

from tessera import hw
from tessera.cli.errors import fail
from tessera.cost import CostError
from tessera.cost.executor import BatchExecutor
from tessera.nki.runtime import default_chip

CHIP_HELP = ("Target chip preset: trn1, inf2, trn2, trn3 (default: "
             "NEURON_PLATFORM_TARGET_OVERRIDE, else trn2).")
KERNEL_CHIP_HELP = ("Target chip preset: trn1, inf2, trn2, trn3 (default: the kernel file's "
                    "CHIP, else NEURON_PLATFORM_TARGET_OVERRIDE, else trn2).")

WorkersOption = Annotated[int | None, typer.Option(
    "--workers", metavar="N",
    help="Processes that tune the kernel shapes missing from the cost cache side by side "
         "(default: the machine's cores; 1 tunes them one by one, with progress per "
         "configuration). With --ray: at most N Ray tasks at once.")]
RayOption = Annotated[str | None, typer.Option(
    "--ray", metavar="ADDRESS",
    help="Tune the missing kernel shapes as tasks on a Ray cluster: ray://HOST:PORT (Ray "
         "Client), HOST:PORT (from a node), auto, or local (a Ray instance on this "
         "machine). Needs pip install 'tessera\\[ray]'.")]


def chip_preset(chip: str | None) -> str:
    """The chip preset name to use (`default_chip()` when none is given), or a one-line
    error naming the choices."""
    name = chip or default_chip()
    try:
        return hw.load_chip(name).name
    except hw.HwError:
        raise fail(f"--chip {name!r} is not a chip preset; choose one of: "
                   f"{', '.join(hw.preset_names('chip'))}") from None


def batch_executor(workers: int | None, ray: str | None) -> BatchExecutor:
    """The executor of `--workers` and `--ray`, checked now (Ray installed, something
    listening at the address) so a mistake is a one-line error before minutes of work."""
    if workers is not None and workers < 1:
        raise fail(f"--workers {workers}: give at least 1")
    if ray is None:
        return BatchExecutor.local(workers)
    try:
        executor = BatchExecutor.ray(ray, workers)
        executor.check()
    except CostError as err:
        raise fail(f"--ray: {err}") from None
    return executor
