"""Placeholder: filled in by the element-wise instruction work (tensor_scalar, ...)."""

from tessera.nki.errors import KernelUsageError


def _todo(*args, **kwargs):
    raise KernelUsageError("not implemented yet")


tensor_scalar = scalar_tensor_tensor = reciprocal = tensor_copy_predicated = _todo
