"""tensor_copy_dynamic_src / tensor_copy_dynamic_dst: on-chip copies with one side at a
runtime offset within each partition (NKI 2.28/2.29 pages "nki.isa.tensor_copy_dynamic_src",
"nki.isa.tensor_copy_dynamic_dst"; removed in NKI 0.4, where `nisa.tensor_copy` takes the
same `.ap(..., scalar_offset=)` view, which Tessera also accepts).

The dynamic side is an SBUF/PSUM view `tile.ap(pattern, offset, scalar_offset=s,
indirect_dim=d)` (`tessera.nki.dynamic_views`): `s` a register or a one-element int tile in
SBUF, read when the copy runs. Rules from the pages: both sides in SBUF or PSUM, the same
partitions and elements per partition, on the Vector, Scalar or GpSimd engine, GpSimd never
touching PSUM; as for tensor_copy, NeuronCore-v2's Scalar engine has no copy. Values are
those of tensor_copy (bit-exact for equal dtypes, else cast). Cost: max(MIN_II_DYNAMIC, N)
engine cycles (`tessera.sim.cost_rules`).
"""

from __future__ import annotations

from tessera.nki.attrs import NO_ATTRS
from tessera.nki.dynamic_views import DynamicTileView
from tessera.nki.errors import EngineAccessError, KernelUsageError
from tessera.nki.isa._common import check_same_layout, record, resolve_engine, tensor_arg
from tessera.nki.isa.dma import copy_values
from tessera.nki.isa.vector import prepare
from tessera.nki.runtime import current, kernel_api
from tessera.nki.stream import Engine, Opcode

_OTHER = {"src": "dst", "dst": "src"}


def _dynamic_copy(op: str, opcode: Opcode, dst: object, src: object, engine: object,
                  side: str) -> None:
    """dst <- src, where `side` ("src" or "dst") is the runtime-offset view."""
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    src = tensor_arg(src, "src", op)
    eng = resolve_engine(engine, opcode, op)
    if eng is Engine.SCALAR and ctx.run.limits.version < 3:
        raise EngineAccessError(f"{op}: the Scalar engine has no tensor copy on "
                                f"NeuronCore-v2 ({ctx.run.limits.chip}); use the vector or "
                                "gpsimd engine")
    prepare(ctx, op, eng, (src,), (dst,))  # SBUF/PSUM, partitions, GpSimd without PSUM
    moving, other = (src, dst) if side == "src" else (dst, src)
    if not isinstance(moving, DynamicTileView):
        raise KernelUsageError(
            f"{op}: {side} {moving.name}{list(moving.shape)} has no runtime offset; pass "
            f"{side}=tile.ap(pattern, offset, scalar_offset=<register or [1, 1] int32 SBUF "
            "tile>) (a copy between fixed places is nisa.tensor_copy)")
    if isinstance(other, DynamicTileView):
        raise KernelUsageError(f"{op}: only {side} sits at a runtime offset; "
                               f"{_OTHER[side]} {other.name} has one too (use "
                               f"tensor_copy_dynamic_{_OTHER[side]} for that side)")
    check_same_layout(src, dst, "src", "dst", op)
    if not ctx.run.symbolic:
        moving.shift(op)  # an offset past the partition row fails here, naming the copy
    record(ctx, eng, opcode, (src,), (dst,), NO_ATTRS)
    if ctx.run.symbolic:
        return
    copy_values(dst, src)


@kernel_api
def tensor_copy_dynamic_src(dst: object, src: object, engine: object = None,
                            name: str | None = None) -> None:
    """dst <- src, with src an SBUF/PSUM view at a runtime offset within each partition
    (`tile.ap(pattern, offset, scalar_offset=reg_or_tile)`); same partitions and elements
    per partition; Vector, Scalar (NeuronCore-v3+) or GpSimd (no PSUM)."""
    _dynamic_copy("tensor_copy_dynamic_src", Opcode.TENSOR_COPY_DYNAMIC_SRC, dst, src,
                  engine, "src")


@kernel_api
def tensor_copy_dynamic_dst(dst: object, src: object, engine: object = None,
                            name: str | None = None) -> None:
    """dst <- src, with dst an SBUF/PSUM view at a runtime offset within each partition;
    otherwise as tensor_copy_dynamic_src."""
    _dynamic_copy("tensor_copy_dynamic_dst", Opcode.TENSOR_COPY_DYNAMIC_DST, dst, src,
                  engine, "dst")
