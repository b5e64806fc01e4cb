"""Exceptions of the network model. Each message says what to change.

Callers that want everything from this layer catch `NetError`.
"""

from __future__ import annotations


class NetError(Exception):
    """Base class of every `tessera.net` error."""


class SizeError(NetError, ValueError):
    """A message size is not a positive byte count ("64MiB", "1GB", "4096")."""


class TopologyError(NetError, ValueError):
    """A topology cannot be built from the presets (unknown instance, missing network, ...)."""


class PlacementError(NetError, ValueError):
    """Ranks do not fit the topology, or a group names ranks that do not exist."""


class UnknownCollectiveError(NetError, ValueError):
    """The collective operation or algorithm name is not one tessera knows."""


class AlgorithmNotApplicableError(NetError, ValueError):
    """The algorithm exists but cannot run this operation on this group (e.g. RHD on 6 ranks)."""

