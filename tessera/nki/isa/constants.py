"""Enumerations of `nki.isa` (`nki.isa.constants`): engines, reduce commands, DMA modes."""

from __future__ import annotations

from enum import Enum as _Enum
from enum import IntEnum as _IntEnum

from tessera.nki.stream import Engine as _Engine

engine = _Engine


class reduce_cmd(_Enum):  # noqa: N801 - NKI's spelling
    """What the Scalar engine's accumulation registers do during an activation."""

    idle = "idle"
    reset = "reset"
    reduce = "reduce"
    reset_reduce = "reset_reduce"
    load_reduce = "load_reduce"  # load a given value, then accumulate (Vector ops with an init)


class oob_mode(_Enum):  # noqa: N801
    """Behaviour of a DMA whose (dynamic) address is out of bounds."""

    error = "error"
    skip = "skip"


class dge_mode(_Enum):  # noqa: N801
    """Which descriptor-generation path issues a DMA (software, hardware, or let us pick)."""

    unknown = "unknown"
    none = "none"
    swdge = "swdge"
    hwdge = "hwdge"


class matmul_perf_mode(_Enum):  # noqa: N801
    """Tensor engine performance modes (double_row: two fp8 rows per PE, NC-v3+)."""

    none = "none"
    double_row = "double_row"
    double_row_gen3 = "double_row_gen3"


class nc_version(_IntEnum):  # noqa: N801
    """NeuronCore generations: gen2 = trn1/inf2, gen3 = trn2, gen4 = trn3."""

    gen2 = 2
    gen3 = 3
    gen4 = 4


class dma_engine(_Enum):  # noqa: N801
    """Queue hint for dma_copy (accepted; the timing model assigns queues). `dma` and
    `gpsimd_dma` are the documented members; the others name the queues' engines."""

    dma = "dma"  # the shared DMA rings (the documented default)
    gpsimd_dma = "gpsimd_dma"  # GpSimd's internal DMA (LNC=2 SBUF-to-SBUF swaps)
    unknown = "unknown"
    sync = "sync"
    act = "act"
    pool = "pool"
