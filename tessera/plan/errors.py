"""Errors of the planner: each message names the option or the number to change."""

from __future__ import annotations


class PlanError(ValueError):
    """A planning request cannot be answered (bad option, unknown model or instance)."""


class NoFeasibleConfigError(PlanError):
    """No configuration of the space fits in memory or divides the model; the message says
    what overflowed in the closest one."""
