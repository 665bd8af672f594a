"""Bundled search spaces (package data) and the code that loads and validates them.

`load_space("vit_mix")` returns a validated, frozen `SearchSpace`; see docs/searching.md
and `search_spaces/vit_mix.yaml` for the file shape and docs/internal-interfaces.md for the API.
"""

from search_spaces.loader import apply_overrides, list_spaces, load_space
from search_spaces.schema import (
    REPORTED_METRICS,
    SAMPLERS,
    Objective,
    Param,
    SearchSpace,
    SpaceError,
)
from search_spaces.validate import build_space

__all__ = [
    "REPORTED_METRICS",
    "SAMPLERS",
    "Objective",
    "Param",
    "SearchSpace",
    "SpaceError",
    "apply_overrides",
    "build_space",
    "list_spaces",
    "load_space",
]
