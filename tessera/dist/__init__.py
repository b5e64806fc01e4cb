"""Multi-chip modelling: topologies, rank placement, collective algorithms and their cost,
and a torch.distributed wrapper that runs the same collectives for real.

    >>> from tessera.dist import CollectiveModel
    >>> model = CollectiveModel.for_instance("trn1.32xlarge", ranks=32)
    >>> model.cost("all_reduce", "64MiB").algorithm  # the fastest applicable algorithm

Layers: `topology` (chips and links from the hw presets), `placement` (rank -> instance,
chip, core), `steps` and `schedule` (algorithms as steps of flows), `routing` and `engine`
(link contention, latency split, time lines), `profiles`, `collectives` (public costing API,
AUTO choice, caching), `comm` (real runs).
"""

from tessera.dist.calibration import CollectiveCalibration, load_calibration
from tessera.dist.collectives import (
    CONCRETE_ALGORITHMS,
    CollectiveCost,
    CollectiveModel,
    applicable_algorithms,
    clear_caches,
    cost_collective,
    size_sweep,
)
from tessera.dist.errors import (
    AlgorithmNotApplicableError,
    CalibrationError,
    CommError,
    DistError,
    PlacementError,
    SizeError,
    TopologyError,
    UnknownCollectiveError,
)
from tessera.dist.ops import (
    Algorithm,
    Collective,
    CollectiveOp,
    bus_factor,
    parse_algorithm,
    parse_op,
)
from tessera.dist.placement import Placement, PlacementOrder, RankLocation, RankMap, place
from tessera.dist.sizes import format_bytes, parse_bytes
from tessera.dist.topology import (
    Link,
    LinkFamily,
    RuntimeFamily,
    Topology,
    from_instance,
    ideal_ring,
    instance_names,
)

__all__ = [
    "CONCRETE_ALGORITHMS",
    "Algorithm",
    "AlgorithmNotApplicableError",
    "CalibrationError",
    "Collective",
    "CollectiveCalibration",
    "CollectiveCost",
    "CollectiveModel",
    "CollectiveOp",
    "CommError",
    "DistError",
    "Link",
    "LinkFamily",
    "Placement",
    "PlacementError",
    "PlacementOrder",
    "RankLocation",
    "RankMap",
    "RuntimeFamily",
    "SizeError",
    "Topology",
    "TopologyError",
    "UnknownCollectiveError",
    "applicable_algorithms",
    "bus_factor",
    "clear_caches",
    "cost_collective",
    "format_bytes",
    "from_instance",
    "ideal_ring",
    "instance_names",
    "load_calibration",
    "parse_algorithm",
    "parse_bytes",
    "parse_op",
    "place",
    "size_sweep",
]
