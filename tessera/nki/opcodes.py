"""One table of the instruction set: per opcode, its `nki.isa` function, engines and
attribute type.

The `nki.isa` function is the opcode's functional and validation rule (numpy semantics and
the hardware-rule checks, raising a specific `NkiError`); `tessera.sim.cost_rules` holds its
cost rule, keyed by the same opcodes. A test checks that every opcode has all three.
"""

from __future__ import annotations

from dataclasses import dataclass

from tessera.hw.enums import Engine
from tessera.nki import attrs as a
from tessera.nki.stream import Opcode


@dataclass(frozen=True)
class OpcodeDef:
    """What the kernel language knows about one opcode."""

    opcode: Opcode
    engines: tuple[Engine, ...]  # engines it may run on; the first is the default
    attrs: type  # the attribute type its instructions carry

    @property
    def isa(self) -> str:
        """Name of the `nki.isa` function that issues it."""
        return self.opcode.value


V, S, G, T = Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD, Engine.TENSOR
ANY_STREAM = (V, G, S)  # tensor_copy, tensor_scalar, memset: any streaming engine

OPCODES: dict[Opcode, OpcodeDef] = {d.opcode: d for d in (
    OpcodeDef(Opcode.NC_MATMUL, (T,), a.MatmulAttrs),
    OpcodeDef(Opcode.NC_TRANSPOSE, (T, V), a.NoAttrs),
    OpcodeDef(Opcode.ACTIVATION, (S,), a.ActivationAttrs),
    OpcodeDef(Opcode.ACTIVATION_REDUCE, (S,), a.ActivationAttrs),
    OpcodeDef(Opcode.TENSOR_TENSOR, (V, G), a.TensorTensorAttrs),
    OpcodeDef(Opcode.TENSOR_SCALAR, ANY_STREAM, a.TensorScalarAttrs),
    OpcodeDef(Opcode.SCALAR_TENSOR_TENSOR, (V,), a.ScalarTensorTensorAttrs),
    OpcodeDef(Opcode.TENSOR_REDUCE, (V,), a.TensorReduceAttrs),
    OpcodeDef(Opcode.TENSOR_COPY, ANY_STREAM, a.NoAttrs),
    OpcodeDef(Opcode.MEMSET, ANY_STREAM, a.MemsetAttrs),
    OpcodeDef(Opcode.IOTA, (G,), a.IotaAttrs),
    OpcodeDef(Opcode.AFFINE_SELECT, (G,), a.AffineSelectAttrs),
    OpcodeDef(Opcode.RECIPROCAL, (V,), a.NoAttrs),
    OpcodeDef(Opcode.DMA_COPY, (Engine.DMA,), a.DmaCopyAttrs),
    OpcodeDef(Opcode.DMA_TRANSPOSE, (Engine.DMA,), a.DmaTransposeAttrs),
    OpcodeDef(Opcode.TENSOR_SCALAR_REDUCE, (V,), a.TensorScalarReduceAttrs),
    OpcodeDef(Opcode.TENSOR_TENSOR_SCAN, (V,), a.ScanAttrs),
    OpcodeDef(Opcode.BN_STATS, (V,), a.NoAttrs),
    OpcodeDef(Opcode.BN_AGGR, (V,), a.NoAttrs),
    OpcodeDef(Opcode.TENSOR_COPY_PREDICATED, (V,), a.PredicatedCopyAttrs),
    OpcodeDef(Opcode.TENSOR_PARTITION_REDUCE, (G,), a.PartitionReduceAttrs),
    OpcodeDef(Opcode.CORE_BARRIER, (G, Engine.SYNC, V, S), a.BarrierAttrs),
    OpcodeDef(Opcode.SENDRECV, (Engine.DMA,), a.SendRecvAttrs),
    OpcodeDef(Opcode.MAX8, (V,), a.NoAttrs),
    OpcodeDef(Opcode.NC_FIND_INDEX8, (V,), a.NoAttrs),
    OpcodeDef(Opcode.NC_MATCH_REPLACE8, (V,), a.MatchReplaceAttrs),
    OpcodeDef(Opcode.NONZERO_WITH_COUNT, (G,), a.NonzeroCountAttrs),
    # group: mx
    OpcodeDef(Opcode.NC_MATMUL_MX, (T,), a.MxMatmulAttrs),
    OpcodeDef(Opcode.QUANTIZE_MX, (V,), a.QuantizeMxAttrs),
    # group: registers
    OpcodeDef(Opcode.REGISTER_ALLOC, (S,), a.RegisterMoveAttrs),
    OpcodeDef(Opcode.REGISTER_MOVE, (S,), a.RegisterMoveAttrs),
    OpcodeDef(Opcode.REGISTER_LOAD, (S,), a.NoAttrs),
    OpcodeDef(Opcode.REGISTER_STORE, (S,), a.NoAttrs),
    OpcodeDef(Opcode.TENSOR_COPY_DYNAMIC_SRC, ANY_STREAM, a.NoAttrs),
    OpcodeDef(Opcode.TENSOR_COPY_DYNAMIC_DST, ANY_STREAM, a.NoAttrs),
    # group: random
    OpcodeDef(Opcode.RNG, (V, G), a.RngAttrs),
    OpcodeDef(Opcode.RAND2, (V,), a.Rand2Attrs),
    OpcodeDef(Opcode.RAND_SET_STATE, (G, V), a.NoAttrs),
    OpcodeDef(Opcode.RAND_GET_STATE, (G, V), a.NoAttrs),
    OpcodeDef(Opcode.SET_RNG_SEED, (V,), a.NoAttrs),
    OpcodeDef(Opcode.DROPOUT, (V,), a.DropoutAttrs),
    # group: gather
    OpcodeDef(Opcode.LOCAL_GATHER, (G,), a.LocalGatherAttrs),
    OpcodeDef(Opcode.NC_N_GATHER, (G,), a.NoAttrs),
    OpcodeDef(Opcode.NC_STREAM_SHUFFLE, (V,), a.StreamShuffleAttrs),
    OpcodeDef(Opcode.DMA_COMPUTE, (Engine.DMA,), a.DmaComputeAttrs),
    # group: select
    OpcodeDef(Opcode.RANGE_SELECT, (V,), a.RangeSelectAttrs),
    OpcodeDef(Opcode.SELECT_REDUCE, (V,), a.SelectReduceAttrs),
    OpcodeDef(Opcode.SEQUENCE_BOUNDS, (G,), a.NoAttrs),
    OpcodeDef(Opcode.TENSOR_SCALAR_CUMULATIVE, (V,), a.CumulativeAttrs),
    OpcodeDef(Opcode.EXPONENTIAL, (V,), a.ExponentialAttrs),
    # group: collectives
    # nki.collectives (not nki.isa): the DMA rings of the replica group move the data
    *(OpcodeDef(op, (Engine.DMA,), a.CollectiveAttrs) for op in (
        Opcode.ALL_REDUCE, Opcode.ALL_GATHER, Opcode.REDUCE_SCATTER, Opcode.ALL_TO_ALL,
        Opcode.ALL_TO_ALL_V, Opcode.COLLECTIVE_PERMUTE, Opcode.COLLECTIVE_PERMUTE_IMPLICIT,
        Opcode.COLLECTIVE_PERMUTE_IMPLICIT_REDUCE)),
    # nki.lnc.sendrecv_compute: a DMA-engine reduction across the two cores of an LNC
    OpcodeDef(Opcode.SENDRECV_COMPUTE, (Engine.DMA,), a.SendRecvComputeAttrs),
)}
