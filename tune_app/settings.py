"""Reading user files and `--set` overrides: the only place (with the CLI) that parses YAML."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

# The YAML reader and writer live in the lower layer; re-exported for the CLI modules.
from search_spaces.loader import dump_yaml, load_yaml  # noqa: F401
from trainers.files import write_text_atomic  # noqa: F401  (the one atomic write)


class UserInputError(Exception):
    """Bad input from the user: the CLI prints it and exits with code 2."""


# Experiment names become folder names under --storage-path (and parts of W&B and Optuna
# names): a safe set keeps `../x` or `a/b` from writing anywhere else.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_NAME_LEN = 100  # Ray adds trial folder names below it; well under NAME_MAX (255)
MAX_PATH_LEN = 1024  # bytes of a user-given output path; PATH_MAX is 4096 on Linux
MAX_PART_LEN = 255  # bytes of one path component (NAME_MAX on Linux and macOS)


def check_name(name: str, what: str = "--name") -> str:
    """`name` if it is a safe experiment name, else UserInputError naming `what`."""
    if len(name) > MAX_NAME_LEN:
        raise UserInputError(
            f"{what}: {len(name)} characters is too long; at most {MAX_NAME_LEN} allowed"
        )
    if not NAME_PATTERN.fullmatch(name):
        raise UserInputError(
            f"{what} {name!r}: use letters, digits, '.', '_' and '-' only, "
            "starting with a letter or digit"
        )
    return name


def default_name(space_name: str, stamp: str) -> str:
    """`<space name>-<stamp>` with every character outside the safe set replaced by `_`."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", space_name).lstrip("._-") or "experiment"
    return f"{safe[: MAX_NAME_LEN - len(stamp) - 1]}-{stamp}"


def check_out_path(path: str | Path, what: str, folder: bool) -> Path:
    """An output path we can create: not too long, no existing file on the way to it.

    Args:
        path: the user-given path.
        what: how the user gave it ("--out"), for the message.
        folder: True when `path` itself is a folder to write into (it may exist as one);
            False when it is a file to write (it may exist as a file, not as a folder).

    Raises:
        UserInputError: the path or a component is too long, or something in the way.
    """
    p = Path(path)
    raw = os.fsencode(str(p))
    if len(raw) > MAX_PATH_LEN or any(len(os.fsencode(c)) > MAX_PART_LEN for c in p.parts):
        raise UserInputError(
            f"{what} {str(p)[:60]}...: too long; at most {MAX_PATH_LEN} bytes, "
            f"{MAX_PART_LEN} per folder or file name"
        )
    if p.exists() and p.is_dir() != folder:
        kind = "a file, not a folder" if folder else "a folder, not a file name"
        raise UserInputError(f"{what} {p}: is {kind}")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserInputError(f"{what} {p}: {parent} is a file, not a folder")
            break
    return p


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
    """Indented JSON; values JSON does not know (paths) become strings."""
    return json.dumps(data, indent=2, sort_keys=False, default=str)


def say(text: str) -> None:
    """A driver's message to the user: stderr, at once (stdout is for the data commands print)."""
    print(text, file=sys.stderr, flush=True)
