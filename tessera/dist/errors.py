"""Exceptions of the distributed layer. Each message says what to change.

Callers that want everything from this layer catch `DistError`.
"""

from __future__ import annotations


class DistError(Exception):
    """Base class of every `tessera.dist` error."""


class SizeError(DistError, ValueError):
    """A message size is not a positive byte count ("64MiB", "1GB", "4096")."""


class TopologyError(DistError, ValueError):
    """A topology cannot be built from the presets (unknown instance, missing network, ...)."""


class PlacementError(DistError, ValueError):
    """Ranks do not fit the topology, or a group names ranks that do not exist."""


class UnknownCollectiveError(DistError, ValueError):
    """The collective operation or algorithm name is not one tessera knows."""


class AlgorithmNotApplicableError(DistError, ValueError):
    """The algorithm exists but cannot run this operation on this group (e.g. RHD on 6 ranks)."""


class CalibrationError(DistError, ValueError):
    """The collectives calibration file is malformed or lacks a constant."""


class CommError(DistError, RuntimeError):
    """A real collective failed: a peer rank died, hung past the timeout, or shapes disagree."""
