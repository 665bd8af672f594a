"""Why a run stops before or during training: torch-free, so any layer can raise or catch them."""

from __future__ import annotations


class SetupError(ValueError):
    """The run cannot start: missing or corrupt data, or settings the data/model reject."""


class NonFiniteLossError(RuntimeError):
    """Training produced NaN/inf; the run stops so the trial is marked errored."""
