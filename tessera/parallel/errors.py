"""Exceptions of the parallel-execution layer. Each message says what to change."""

from __future__ import annotations


class ParallelError(Exception):
    """Base class of every `tessera.parallel` error."""


class CommError(ParallelError, RuntimeError):
    """A real collective failed: a peer rank died, hung past the timeout, or shapes disagree."""


class CheckpointError(ParallelError):
    """A checkpoint cannot be saved or loaded as asked: a shard file is truncated or corrupt,
    a tensor is missing or has another shape or dtype than the model's."""
