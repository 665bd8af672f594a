"""Reading user files and `--set` overrides: the only place (with the CLI) that parses YAML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from search_spaces.loader import load_yaml  # the one YAML reader; lives in the lower layer


class UserInputError(Exception):
    """Bad input from the user: the CLI prints it and exits with code 2."""


def read_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON file whose top level is a mapping; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise UserInputError(f"{p}: no such file")
    try:
        data = load_yaml(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserInputError(f"{p}: not valid YAML/JSON: {e}") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserInputError(
            f"{p}: the top level must be a mapping of settings, got {type(data).__name__}"
        )
    return data


def parse_set(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`["rho=0.5", "anneal=cosine", "betas=[0.9, 0.99]"]` -> typed values (YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = load_yaml(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise UserInputError(f"--set {item!r}: value is not valid YAML: {e}") from e
    return out


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)
