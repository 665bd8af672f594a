"""Finding, reading and overriding search-space files (bundled package data or any path)."""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from search_spaces.schema import TOP_KEYS, SearchSpace, SpaceError
from search_spaces.validate import build_space

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable  # Python >= 3.11; only for type checkers

# Only `.yaml` files are package data (pyproject: search_spaces = ["*.yaml"]).
_SUFFIX = ".yaml"


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a float (YAML 1.2), not the string PyYAML makes of it."""


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes every string `_Loader` would read as something else (`1e-3`)."""


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
# The dumper decides whether a string needs quotes by resolving it as the loader would, so
# both must know the same implicit types.
for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """Parse YAML text the way every user file of this project is read (safe; `1e-3` a float).

    Lives here, in the lowest layer that reads YAML, so the CLI layer (`tune_app.settings`)
    imports it from below rather than this package importing upward.
    """
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def dump_yaml(data: Any, sort_keys: bool = False) -> str:
    """YAML text that `load_yaml` (and `yaml.safe_load`) reads back as the same values.

    PyYAML's own dumper writes a string such as `1e-3` bare, which `load_yaml` reads as a
    float; this one quotes it.
    """
    return yaml.dump(data, Dumper=_Dumper, sort_keys=sort_keys, allow_unicode=True)


def load_space(name_or_path: str, overrides: dict[str, Any] | None = None) -> SearchSpace:
    """Read, override and validate a space.

    Args:
        name_or_path: a bundled space ("vit_mix" or "vit_mix.yaml") or a path to a YAML file;
            an existing file wins over a bundled space of the same name.
        overrides: dotted paths into the raw document, applied before validation, e.g.
            {"trainer.epochs_sl": 3, "search.num_samples": 4, "parameters.rho.max": 0.5}.

    Returns:
        The validated space; its `source` is the file read.

    Raises:
        SpaceError: unknown space, unreadable file, invalid YAML, a bad override or a bad value;
            the message names the file and the dotted field.
    """
    source, text = _locate(name_or_path)
    raw = parse_yaml(text, source)
    if overrides:
        raw = apply_overrides(raw, overrides, source)
    return build_space(raw, source)


def list_spaces() -> list[tuple[str, str]]:
    """(name, description) of every bundled space, sorted by name.

    Only each file's description is read (no validation), so listing stays cheap and a broken
    file still shows up; `load_space` reports what is wrong with it.
    """
    out = []
    for name, res in sorted(_bundled().items()):
        raw = parse_yaml(res.read_text(encoding="utf-8"), str(res))
        description = raw.get("description", "") if isinstance(raw, dict) else ""
        out.append((name, str(description)))
    return out


def parse_yaml(text: str, source: str) -> Any:
    """Parse a space file's text; syntax errors become a SpaceError naming the file and line."""
    try:
        return load_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise SpaceError(f"{source}: {where}not valid YAML: {problem}") from None


def apply_overrides(raw: Any, overrides: dict[str, Any], source: str) -> Any:
    """A copy of `raw` with each dotted path set, creating missing intermediate mappings.

    List items are addressed by index ("objectives.1.goal"). The result is validated afterwards,
    so a path to a key the schema does not know is reported there with the allowed keys.

    Raises:
        SpaceError: the top-level key is unknown, or a path runs through a value that is neither
            a mapping nor a list.
    """
    out = {} if raw is None else copy.deepcopy(raw)
    if not isinstance(out, dict):
        return out  # validation reports the top level; there is nothing to override into
    for key, value in overrides.items():
        parts = str(key).split(".")
        if not all(parts):
            raise SpaceError(f"{source}: override {key!r}: empty part in the dotted path")
        if parts[0] not in TOP_KEYS:
            raise SpaceError(
                f"{source}: override {key!r}: unknown key {parts[0]!r}; "
                f"allowed top-level keys: {', '.join(TOP_KEYS)}"
            )
        node: Any = out
        for depth, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[: depth + 1]), f"{source}: override {key!r}")
        _set(node, parts[-1], value, f"{source}: override {key!r}")
    return out


def _child(node: Any, part: str, path: str, context: str) -> Any:
    """Descend one level, creating a mapping where the key is missing or null."""
    if isinstance(node, dict):
        if node.get(part) is None:
            node[part] = {}
        child = node[part]
    else:
        child = node[_index(node, part, context)]
    if not isinstance(child, (dict, list)):
        raise SpaceError(f"{context}: {path} is {child!r}, not a mapping or list")
    return child


def _set(node: Any, part: str, value: Any, context: str) -> None:
    if isinstance(node, dict):
        node[part] = value
    else:
        node[_index(node, part, context)] = value


def _index(node: list[Any], part: str, context: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise SpaceError(f"{context}: {part!r} is not an index of a list of {len(node)} items")
    return int(part)


def _locate(name_or_path: str) -> tuple[str, str]:
    """(source, text) of an existing file or a bundled space."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return str(path), _read(path, str(path))
    name = name_or_path.removesuffix(_SUFFIX)
    bundled = _bundled()
    if name in bundled:
        return str(bundled[name]), _read(bundled[name], str(bundled[name]))
    raise SpaceError(
        f"{name_or_path}: no such file and no bundled space of that name; "
        f"bundled spaces: {', '.join(sorted(bundled))}"
    )


def _read(res: Path | Traversable, source: str) -> str:
    try:
        return res.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpaceError(f"{source}: cannot read the file: {e}") from None


def _bundled() -> dict[str, Traversable]:
    """Bundled spaces by name, found as package data so installed copies work too."""
    files = resources.files("search_spaces").iterdir()
    return {f.name.removesuffix(_SUFFIX): f for f in files if f.name.endswith(_SUFFIX)}
