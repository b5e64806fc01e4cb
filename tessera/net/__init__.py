"""The hardware network: topologies, rank placement, collective algorithms and their cost.

    >>> from tessera.net import CollectiveModel
    >>> model = CollectiveModel.for_instance("trn1.32xlarge", ranks=32)
    >>> model.cost("all_reduce", "64MiB").algorithm  # what the Neuron runtime runs
    >>> model.cost("all_reduce", "64MiB", algorithm="auto").algorithm  # the fastest
    >>> model.cost("all_reduce", "16KiB", in_graph=True).time_s  # inside a compiled graph

Layers: `topology` (chips and links from the hw presets), `placement` (rank -> instance,
chip, core), `steps`, `schedule`, `runtime_schedules` and `hierarchy` (algorithms as steps of
flows), `policy` (the Neuron runtime's documented choice), `routing` and `engine` (link
contention, latency split, time lines), `profiles`, `collectives` (public costing API,
RUNTIME and AUTO choices, in-graph costs, caching). Running the same collectives for real
over torch.distributed is `tessera.parallel.comm`; this package never imports torch.
"""

from tessera.net import in_kernel  # noqa: F401 - prices nki.collectives for tessera.sim
from tessera.net.collective_calibration import CollectiveCalibration, load_calibration
from tessera.net.collectives import (
    CONCRETE_ALGORITHMS,
    CollectiveCost,
    CollectiveModel,
    applicable_algorithms,
    clear_caches,
    cost_collective,
    size_sweep,
)
from tessera.net.errors import (
    AlgorithmNotApplicableError,
    NetError,
    PlacementError,
    SizeError,
    TopologyError,
    UnknownCollectiveError,
)
from tessera.net.hierarchy import Hierarchy
from tessera.net.ops import (
    Algorithm,
    Collective,
    CollectiveOp,
    bus_factor,
    parse_algorithm,
    parse_op,
)
from tessera.net.placement import Placement, PlacementOrder, RankLocation, RankMap, place
from tessera.net.policy import Choice, default_algorithm, runtime_choice
from tessera.net.sizes import format_bytes, parse_bytes
from tessera.net.topology import (
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
    "Choice",
    "Collective",
    "CollectiveCalibration",
    "CollectiveCost",
    "CollectiveModel",
    "CollectiveOp",
    "Hierarchy",
    "NetError",
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
    "default_algorithm",
    "format_bytes",
    "from_instance",
    "ideal_ring",
    "instance_names",
    "load_calibration",
    "parse_algorithm",
    "parse_bytes",
    "parse_op",
    "place",
    "runtime_choice",
    "size_sweep",
]
