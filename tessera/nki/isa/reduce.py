"""Placeholder: filled in by the reduction instruction work."""

from tessera.nki.errors import KernelUsageError


def _todo(*args, **kwargs):
    raise KernelUsageError("not implemented yet")


tensor_reduce = tensor_scalar_reduce = tensor_tensor_scan = _todo
bn_stats = bn_aggr = tensor_partition_reduce = _todo
