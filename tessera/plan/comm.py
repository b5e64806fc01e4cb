"""Collective times of a configuration on the instance topology, from `tessera.net`.

Ranks follow TorchTitan's mesh order (pp, dp_replicate, dp_shard, cp, tp; tp innermost, see
`space.py`), so each parallel dimension's group is a strided set of ranks and the network
model sees where its members really sit (same chip, same instance, or across EFA).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from tessera.net import CollectiveModel, NetError
from tessera.plan.devices import Device, DeviceKind
from tessera.plan.errors import PlanError
from tessera.plan.space import ParallelConfig


@dataclass(frozen=True)
class Groups:
    """The first group of each parallel dimension (all groups of a dimension are alike up to
    a shift, which the topology's symmetry makes equal in cost)."""

    tp: tuple[int, ...]
    cp: tuple[int, ...]
    dp_shard: tuple[int, ...]
    dp_replicate: tuple[int, ...]
    dp: tuple[int, ...]  # every data-parallel rank (replicas x shards)
    ep: tuple[int, ...]
    pp_pair: tuple[int, ...]  # a rank and the same rank of the next stage


def groups(cfg: ParallelConfig) -> Groups:
    """Rank groups of `cfg` in TorchTitan's mesh order."""
    tp, cp, shard, rep = cfg.tp, cfg.cp, cfg.dp_shard, cfg.dp_replicate
    stride_cp, stride_shard = tp, tp * cp
    stride_rep = stride_shard * shard
    stride_pp = stride_rep * rep
    dp = tuple(s * stride_shard + r * stride_rep for r in range(rep) for s in range(shard))
    # EP spans cp, then dp_shard (and dp_replicate if need be), in rank order of those dims
    ep_pool = sorted(c * stride_cp + d for d in dp for c in range(cp))
    return Groups(
        tp=tuple(range(tp)), cp=tuple(c * stride_cp for c in range(cp)),
        dp_shard=tuple(s * stride_shard for s in range(shard)),
        dp_replicate=tuple(r * stride_rep for r in range(rep)), dp=dp,
        ep=tuple(ep_pool[: cfg.ep]), pp_pair=(0, stride_pp) if cfg.pp > 1 else (0,))


class Network:
    """Collective times for `ranks` devices on `instances` instances (cached)."""

    def __init__(self, device: Device, instances: int) -> None:
        self.device = device
        self.instances = instances
        ranks = device.per_instance * instances
        lnc = None if device.kind is DeviceKind.GPU else device.lnc
        try:
            self.model = CollectiveModel.for_instance(device.instance.name, ranks=ranks,
                                                      instances=instances, lnc=lnc)
        except NetError as err:
            raise PlanError(f"--instance {device.instance.name} x {instances}: {err}") from None

    def time_s(self, op: str, n_bytes: float, group: tuple[int, ...]) -> float:
        """Time of `op` on `n_bytes` (the collective's buffer, as nccom-test sizes it) over
        `group`, as a collective inside a compiled graph pays it (`net`'s `in_graph`: no
        standalone launch overhead); 0 for a group of one or nothing to move."""
        if len(group) < 2 or n_bytes <= 0:
            return 0.0
        return _cost(self.model, op, int(n_bytes), group)


@functools.lru_cache(maxsize=65536)
def _cost(model: CollectiveModel, op: str, n_bytes: int, group: tuple[int, ...]) -> float:
    try:
        return model.cost(op, n_bytes, group=group, in_graph=True).time_s
    except NetError as err:
        raise PlanError(f"{op} of {n_bytes} bytes over ranks {group[:4]}...: {err}") from None


@functools.lru_cache(maxsize=256)
def network(device: Device, instances: int) -> Network:
    """The (cached) network of `instances` instances of `device`'s instance type."""
    return Network(device, instances)
