"""Placeholder: filled in by the GpSimd instruction work."""

from tessera.nki.errors import KernelUsageError


def _todo(*args, **kwargs):
    raise KernelUsageError("not implemented yet")


iota = affine_select = _todo
