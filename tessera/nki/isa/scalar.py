"""Placeholder: filled in by the Scalar-engine instruction work."""

from tessera.nki.errors import KernelUsageError


def _todo(*args, **kwargs):
    raise KernelUsageError("not implemented yet")


activation = activation_reduce = _todo
