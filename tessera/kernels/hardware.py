"""What the library kernels read from the hardware they are traced for.

Kernels size their tiles from the core they run on (`nl.tile_size`, filled from the chip
preset of the trace), never from constants of their own, so a what-if chip with another
partition count traces kernels that fit it.
"""

from __future__ import annotations

import tessera.nki.language as nl


def pmax() -> int:
    """Partitions of the core being traced (`nl.tile_size.pmax`; outside a kernel, of the
    default chip): the rows of a tile and the K rows of one matmul contraction."""
    return nl.tile_size.pmax


def stationary_fmax() -> int:
    """Free size of a matmul's stationary operand (the M columns of one matmul)."""
    return nl.tile_size.gemm_stationary_fmax


def moving_fmax() -> int:
    """Free size of a matmul's moving operand (the N columns of one matmul: a PSUM bank of
    fp32)."""
    return nl.tile_size.gemm_moving_fmax


def psum_bank_bytes() -> int:
    """Bytes per partition of one PSUM accumulation bank."""
    return nl.tile_size.psum_bank_fmax_bytes
