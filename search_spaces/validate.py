"""The rules a raw YAML document must follow to become a `SearchSpace`.

Each `_section` helper returns plain values or raises `_Invalid(dotted_path, problem)`, which
`build_space` turns into one `SpaceError` naming the file. Whether a *value* is legal for a trainer
setting is left to `TrialConfig.from_dict`, so those rules live in one place.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import math
from pathlib import Path
from typing import Any, NoReturn

from search_spaces.schema import (
    BASELINE_DEFAULTS,
    BASELINE_PIPELINES,
    DISTRIBUTIONS,
    FIELDS,
    GOALS,
    HALVING_DEFAULTS,
    REPORTED_METRICS,
    RESERVED,
    RESOURCE_DEFAULTS,
    SAMPLERS,
    SCHEDULERS,
    SEARCH_DEFAULTS,
    TOP_KEYS,
    WANDB_KEYS,
    Objective,
    Param,
    SearchSpace,
    SpaceError,
)
from trainers.config import SEED_MAX, ConfigError, TrialConfig

_FLOAT_DISTRIBUTIONS = ("uniform", "log_uniform_values", "q_uniform")
# Optuna's samplers seed numpy's RandomState, which takes seeds in [0, 2**32 - 1].
SAMPLER_SEED_MAX = 2**32 - 1


class _Invalid(Exception):
    """Raised inside validation; `build_space` adds the file name and re-raises a SpaceError."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path, self.problem = path, problem


def build_space(raw: Any, source: str) -> SearchSpace:
    """Validate a parsed YAML mapping and build the space.

    Args:
        raw: the parsed YAML document (None for an empty file).
        source: the file it came from; it starts every error message.

    Raises:
        SpaceError: the first problem found, naming the file and the dotted field.
    """
    try:
        return SearchSpace(source=source, **_resolve(raw, source))
    except _Invalid as e:
        where = f"{e.path}: " if e.path else ""
        raise SpaceError(f"{source}: {where}{e.problem}") from None


def _resolve(raw: Any, source: str) -> dict[str, Any]:
    """The SearchSpace fields of a parsed document, defaults filled in."""
    if raw is None:
        _fail("", f"the file is empty; expected a mapping with keys {', '.join(TOP_KEYS)}")
    if not isinstance(raw, dict):
        _fail("", f"the top level must be a mapping of {', '.join(TOP_KEYS)}; got {_kind(raw)}")
    _known_keys(raw, TOP_KEYS, "")
    trainer = _trainer(raw.get("trainer"))  # first: the parameters are checked against it
    parameters = _parameters(raw.get("parameters"), trainer)
    return {
        "name": _text(raw.get("name", Path(source).stem), "name"),
        "description": _text(raw.get("description", ""), "description"),
        "trainer": _absolute_data_dir(trainer),
        "parameters": {n: _absolute_data_dirs(p) for n, p in parameters.items()},
        "objectives": _objectives(raw.get("objectives")),
        **_search(raw.get("search")),
        **_baselines(raw.get("baselines")),
        **_resources(raw.get("resources")),
        "wandb": _wandb(raw.get("wandb")),
    }


def _trainer(raw: Any) -> dict[str, Any]:
    trainer = _section(raw, "trainer", None)
    for key in trainer:
        if key in RESERVED:
            _fail(f"trainer.{key}", f"{RESERVED[key]}; remove it")
        if key not in FIELDS:
            _fail(f"trainer.{key}", f"unknown setting; allowed: {_allowed_fields()}")
    try:
        TrialConfig.from_dict(trainer)
    except ConfigError as e:
        # ConfigError messages start with "<field>: "; name it in our dotted form instead.
        name, sep, rest = str(e).partition(": ")
        if sep and name in FIELDS:
            _fail(f"trainer.{name}", rest)
        _fail("trainer", str(e))
    return trainer


def _absolute(data_dir: Any) -> Any:
    """A relative `data_dir`, made absolute against the current folder (other values as-is).

    Ray runs each trial in a folder of its own, where a relative path would name nothing: the
    up-front data check would pass and every trial then fail.
    """
    if not isinstance(data_dir, str) or not data_dir:
        return data_dir
    return str(Path(data_dir).expanduser().resolve())


PATH_FIELDS = ("data_dir", "unlabeled_dir", "data_cache")  # folders: made absolute


def _absolute_data_dir(trainer: dict[str, Any]) -> dict[str, Any]:
    return {k: _absolute(v) if k in PATH_FIELDS else v for k, v in trainer.items()}


def _absolute_data_dirs(param: Param) -> Param:
    if param.name not in PATH_FIELDS:
        return param
    values = tuple(_absolute(v) for v in param.values)
    return dataclasses.replace(param, values=values, value=_absolute(param.value))


def _parameters(raw: Any, trainer: dict[str, Any]) -> dict[str, Param]:
    specs = _section(raw, "parameters", None)
    params = {}
    for name, spec in specs.items():
        path = f"parameters.{name}"
        if name in RESERVED:
            _fail(path, f"cannot be searched: {RESERVED[name]}")
        if name not in FIELDS:
            _fail(path, f"not a TrialConfig setting; allowed: {_allowed_fields()}")
        if name in trainer:
            _fail(path, f"also fixed in trainer.{name}; a setting is fixed or searched, not both")
        params[name] = _param(name, spec, path)
    if not any(p.distribution != "constant" for p in params.values()):
        _fail("parameters", "nothing is searched; give at least one distribution or values entry")
    # Constants join the fixed settings, so each is checked against those before it and the
    # searched values against all of them; a conflict is blamed on the entry that causes it.
    base = dict(trainer)
    for param in sorted(params.values(), key=lambda p: p.distribution != "constant"):
        for key, value in param.candidates():
            try:
                TrialConfig.from_dict({**base, param.name: value})
            except ConfigError as e:
                hint = ""
                if param.distribution in _FLOAT_DISTRIBUTIONS and "expected int" in str(e):
                    hint = f" ({param.distribution} samples floats; use int_uniform)"
                _fail(f"parameters.{param.name}.{key}", f"{e}{hint}")
        if param.distribution == "constant":
            base[param.name] = param.value
    return params


def _param(name: str, spec: Any, path: str) -> Param:
    forms = [k for k in ("distribution", "values", "value") if isinstance(spec, dict) and k in spec]
    if len(forms) != 1:
        _fail(
            path,
            "expected exactly one of {distribution: ..., min: ..., max: ...}, "
            f"{{values: [...]}} or {{value: ...}}; got {spec!r}",
        )
    if forms == ["value"]:
        _known_keys(spec, ("value",), path)
        return Param(name, "constant", value=spec["value"])
    if forms == ["values"]:
        _known_keys(spec, ("values",), path)
        values = _unique_list(spec["values"], f"{path}.values")
        if any(isinstance(v, (list, dict)) for v in values):
            # Optuna's categorical choices must be scalars; a list would fail at the first trial
            # (and a tuple choice breaks the study on resume).
            pair = name.startswith("betas")
            hint = " (write a pair such as betas as '0.9,0.95')" if pair else ""
            _fail(f"{path}.values", f"choices must be numbers, strings, booleans or null{hint}")
        return Param(name, "categorical", values=values)
    dist = spec["distribution"]
    if dist not in DISTRIBUTIONS:
        _fail(
            f"{path}.distribution",
            f"{dist!r} is not supported; allowed: {', '.join(DISTRIBUTIONS)} (or values: / value:)",
        )
    _known_keys(
        spec, ("distribution", "min", "max") + (("q",) if dist == "q_uniform" else ()), path
    )
    lo, hi = (_bound(spec.get(k), f"{path}.{k}", dist) for k in ("min", "max"))
    if not lo < hi:
        _fail(f"{path}.min", f"{lo!r} must be less than max ({hi!r})")
    if dist == "log_uniform_values" and lo <= 0:
        _fail(f"{path}.min", f"{lo!r}: must be > 0 for log_uniform_values")
    q = _bound(spec.get("q"), f"{path}.q", dist) if dist == "q_uniform" else None
    if q is not None and q <= 0:
        _fail(f"{path}.q", f"{q!r}: must be > 0")
    return Param(name, dist, min=lo, max=hi, q=q)


def _bound(value: Any, path: str, dist: str) -> float:
    # Samples of the float distributions are floats; checking them as floats lets TrialConfig
    # reject, say, `uniform` on an integer setting such as epochs_sl.
    if value is None:
        _fail(path, f"required for {dist}")
    if dist == "int_uniform":
        if not _is_int(value):
            _fail(path, f"expected an integer for int_uniform, got {value!r}")
        return value
    if not _is_number(value):
        _fail(path, f"expected a finite number, got {value!r}")
    return float(value)


def _objectives(raw: Any) -> tuple[Objective, ...]:
    if not isinstance(raw, list) or not raw:
        _fail("objectives", f"expected a non-empty list of {{metric, goal}}; got {raw!r}")
    out: list[Objective] = []
    for i, item in enumerate(raw):
        path = f"objectives.{i}"
        item = _section(item, path, None)
        _known_keys(item, ("metric", "goal"), path)
        metric = _choice(item.get("metric"), REPORTED_METRICS, f"{path}.metric")
        if metric in (o.metric for o in out):
            _fail(f"{path}.metric", f"{metric!r} is already an objective; list each metric once")
        out.append(Objective(metric, _choice(item.get("goal"), GOALS, f"{path}.goal")))
    return tuple(out)


def _search(raw: Any) -> dict[str, Any]:
    s = _section(raw, "search", SEARCH_DEFAULTS)
    sampler = _choice(s["sampler"], SAMPLERS, "search.sampler")
    if sampler == "gp" and not _scipy_available():
        _fail("search.sampler", "gp needs scipy, which is not installed: pip install scipy")
    out: dict[str, Any] = {"sampler": sampler}
    for key, minimum in (("num_samples", 1), ("max_concurrent", 1)):
        value = s[key]
        if not _is_int(value) or value < minimum:
            _fail(f"search.{key}", f"expected an integer >= {minimum}, got {value!r}")
        out[key] = value
    out["seed"] = _seed(s["seed"], "search.seed", SAMPLER_SEED_MAX)
    return {**out, **_confirm(s["confirm"], out["seed"]), "scheduler": _scheduler(s["scheduler"])}


def _scheduler(raw: Any) -> dict[str, Any]:
    """search.scheduler: {type: fifo} (the default) or {type: pareto_halving, grace, eta}."""
    kind = "fifo" if raw is None else _section(raw, "search.scheduler", None).get("type", "fifo")
    _choice(kind, SCHEDULERS, "search.scheduler.type")
    if kind == "fifo":
        _known_keys(raw or {}, ("type",), "search.scheduler")
        return {"type": "fifo"}
    s = _section(raw, "search.scheduler", HALVING_DEFAULTS)
    if not _is_int(s["grace"]) or s["grace"] < 1:
        _fail("search.scheduler.grace", f"expected an integer >= 1 (epochs), got {s['grace']!r}")
    if not _is_number(s["eta"]) or not s["eta"] > 1:
        _fail("search.scheduler.eta", f"expected a number > 1, got {s['eta']!r}")
    return s


def _confirm(raw: Any, search_seed: int) -> dict[str, Any]:
    """search.confirm: {top_k: K >= 1, seeds: [extra seeds, none equal to search.seed]}."""
    if raw is None:
        return {"confirm_top_k": 0, "confirm_seeds": ()}
    c = _section(raw, "search.confirm", {"top_k": None, "seeds": None})
    top_k = c["top_k"]
    if not _is_int(top_k) or top_k < 1:
        _fail("search.confirm.top_k", f"expected an integer >= 1, got {top_k!r}")
    seeds = _unique_list(c["seeds"], "search.confirm.seeds")
    for seed in seeds:
        _seed(seed, "search.confirm.seeds", SEED_MAX)
        if seed == search_seed:
            _fail(
                "search.confirm.seeds",
                f"{seed} is search.seed, which every sampled trial already ran; "
                "list only the extra seeds",
            )
    return {"confirm_top_k": top_k, "confirm_seeds": seeds}


def _seed(value: Any, path: str, maximum: int) -> int:
    if not _is_int(value) or not 0 <= value <= maximum:
        _fail(path, f"expected an integer in [0, {maximum}], got {value!r}")
    return value


def _baselines(raw: Any) -> dict[str, tuple[Any, ...]]:
    b = _section(raw, "baselines", BASELINE_DEFAULTS)
    pipelines = _unique_list(b["pipelines"], "baselines.pipelines", allow_empty=True)
    for name in pipelines:
        _choice(name, BASELINE_PIPELINES, "baselines.pipelines")
    # Seeds may only be empty when there are no baselines to run.
    seeds = _unique_list(b["seeds"], "baselines.seeds", allow_empty=not pipelines)
    for seed in seeds:
        _seed(seed, "baselines.seeds", SEED_MAX)
    return {"baseline_pipelines": pipelines, "baseline_seeds": seeds}


def _resources(raw: Any) -> dict[str, float]:
    r = _section(raw, "resources", RESOURCE_DEFAULTS)
    cpu, gpu = r["cpu"], r["gpu"]
    if not _is_number(cpu) or not cpu > 0:
        _fail("resources.cpu", f"{cpu!r}: must be a number > 0")
    if not _is_number(gpu) or not gpu >= 0:
        _fail("resources.gpu", f"{gpu!r}: must be a number >= 0 (0.25 packs four trials per GPU)")
    if gpu > 1:  # the trainer runs on one device: a second GPU would sit idle
        _fail("resources.gpu", f"{gpu!r}: at most 1 (a trial trains on one GPU; 0.25 packs four)")
    return {"cpu": cpu, "gpu": gpu}


def _wandb(raw: Any) -> dict[str, Any]:
    w = _section(raw, "wandb", None)
    _known_keys(w, WANDB_KEYS, "wandb")
    for key in ("project", "entity", "group"):
        if w.get(key) is not None and not isinstance(w[key], str):
            _fail(f"wandb.{key}", f"expected a string, got {w[key]!r}")
    tags = w.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        _fail("wandb.tags", f"expected a list of strings, got {tags!r}")
    return w


def _section(raw: Any, path: str, defaults: dict[str, Any] | None) -> dict[str, Any]:
    """A mapping (null = empty) over `defaults`, whose keys are then the only ones allowed."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        _fail(path, f"expected a mapping, got {_kind(raw)}")
    if defaults is None:
        return copy.deepcopy(raw)
    _known_keys(raw, tuple(defaults), path)
    return {**copy.deepcopy(defaults), **copy.deepcopy(raw)}


def _known_keys(mapping: dict[Any, Any], allowed: tuple[str, ...], path: str) -> None:
    for key in mapping:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            _fail(where, f"unknown key; allowed: {', '.join(allowed)}")


def _unique_list(raw: Any, path: str, allow_empty: bool = False) -> tuple[Any, ...]:
    if not isinstance(raw, list) or not (raw or allow_empty):
        _fail(path, f"expected a {'' if allow_empty else 'non-empty '}list, got {raw!r}")
    for i, value in enumerate(raw):
        if value in raw[:i]:
            _fail(path, f"{value!r} is listed twice")
    return tuple(raw)


def _choice(value: Any, allowed: tuple[str, ...], path: str) -> str:
    if value is None:
        _fail(path, f"required; allowed: {', '.join(allowed)}")
    if not isinstance(value, str) or value not in allowed:
        _fail(path, f"{value!r} is not allowed; allowed: {', '.join(allowed)}")
    return value


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or (path == "name" and not value.strip()):
        _fail(path, f"expected a {'non-empty ' if path == 'name' else ''}string, got {value!r}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite int or float (YAML's .inf and .nan are floats too)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _kind(value: Any) -> str:
    names: dict[type, str] = {list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)


def _allowed_fields() -> str:
    return ", ".join(sorted(set(FIELDS) - set(RESERVED)))


def _scipy_available() -> bool:
    # Optuna's GPSampler imports scipy lazily; failing here beats failing on the first trial.
    return importlib.util.find_spec("scipy") is not None


def _fail(path: str, problem: str) -> NoReturn:
    raise _Invalid(path, problem)
