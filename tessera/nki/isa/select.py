"""Selections, bounds and cumulative ops: range_select, select_reduce, sequence_bounds,
tensor_scalar_cumulative, exponential.

Not implemented yet: each name is a `Refused` placeholder (tessera.nki.refusals).
"""

from __future__ import annotations

from tessera.nki.refusals import Refused

_REGISTER = "engine registers and register-driven control flow are not modelled"
_RANDOM = "random number generation is not modelled"
_GATHER = "on-chip gathers are not modelled"


def _nisa(name: str, reason: str) -> Refused:
    return Refused(f"nisa.{name}", reason)


range_select = _nisa("range_select", "selection by value range with max reduction")
select_reduce = _nisa("select_reduce", "predicated selection with max reduction")
sequence_bounds = _nisa("sequence_bounds", "sequence bounds from segment ids")
tensor_scalar_cumulative = _nisa("tensor_scalar_cumulative",
                                 "tensor-scalar operation with a cumulative reduction")
exponential = _nisa("exponential", "the NeuronCore-v4 exponential with max subtraction")

__all__ = ["exponential", "range_select", "select_reduce", "sequence_bounds",
           "tensor_scalar_cumulative"]
