"""`<experiment>/calibration.json`: the step-cost tables a search's trials price their steps with.

One table per node type (`trainers.calibrate.hardware_key`: CPU model, threads, device type, GPU
name; not the host name), each measured before the first trial, while nothing else runs, for
the space's model, data, batch size, precision and the per-trial threads, in a Ray task
holding one trial's resources pinned to a node of that type (`tune_app.orchestrate`). A
cluster of identical nodes is calibrated once. Tables are reused on `--resume`; a node type
that appeared since (a node that joined the cluster) is calibrated then, before any trial runs.

A trial prices its steps with its own node's table (`table_for`). One that lands on a node type
with no table (a node that joined while the search ran) fails with a message saying so,
rather than borrow another type's prices: the next `--resume` calibrates that type for the
trials after it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search_spaces import SearchSpace
from trainers import SetupError, TrialConfig
from trainers.calibrate import Calibration, calibrate
from tune_app.settings import write_text_atomic

CALIBRATION_FILE = "calibration.json"
# 1: one table, for the node it was measured on; 2: one table per node type ("by_hardware").
FILE_VERSION = 2

Tables = dict[str, dict[str, float]]  # node type (hardware key) -> seconds per step kind


def choices(space: SearchSpace, name: str) -> list[Any]:
    """Every value a setting can take in the space: searched values, or the fixed one."""
    param = space.parameters.get(name)
    if param is None:
        return [space.trial_config({}, "mixtraining", None).to_dict()[name]]
    if param.distribution == "categorical":
        return list(param.values)
    if param.distribution == "constant":
        return [param.value]
    raise ValueError(f"{space.source}: parameters.{name}: must be categorical or constant")


def space_step_kinds(space: SearchSpace) -> set[str]:
    """The step kinds any trial of the space (searched or baseline) can take.

    A kind no trial ends up using costs a few calibration steps; a missing one would fail
    every trial that takes it, so this errs on the side of more.
    """
    kinds = {"sl", "ssl"}
    kinds |= {f"mix_{p}" for p in choices(space, "mix_pass")}
    kinds |= {f"sl_{a}" for a in choices(space, "sl_accel") if a != "none"}
    return kinds


def calibration_config(fixed: dict[str, Any]) -> TrialConfig:
    """The config calibration measures: a trial's fixed settings (model, data, batch, threads,
    device, precision), as a MixTraining run so every phase exists."""
    return TrialConfig.from_dict({**fixed, "pipeline": "mixtraining"})


def write_calibrations(calibrations: dict[str, Calibration], path: Path) -> None:
    """All tables, atomically (a crash leaves the old file or the new one, never half)."""
    by_hardware = {key: calibrations[key].to_dict() for key in sorted(calibrations)}
    data = {"version": FILE_VERSION, "by_hardware": by_hardware}
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def parse_calibrations(data: dict[str, Any]) -> dict[str, Calibration]:
    """The tables of a calibration.json, by node type; a version-1 file is its one table, under
    the node type its recorded hardware names."""
    version = data.get("version")
    if version == 1:
        one = Calibration.from_dict(data)
        return {one.key: one}
    if version != FILE_VERSION:
        raise ValueError(f"version {version!r}; this tune-app reads versions 1 and {FILE_VERSION}")
    found = {key: Calibration.from_dict(c) for key, c in data["by_hardware"].items()}
    for key, c in found.items():
        if key != c.key:  # a hand-edited file: prices would go to the wrong node type
            raise ValueError(f"by_hardware.{key!r} holds a table measured on {c.key!r}")
    return found


def read_calibrations(path: Path) -> dict[str, Calibration]:
    """The tables of `path` by node type.

    Raises:
        ValueError: not a calibration file this version reads (the message names the file).
    """
    try:
        return parse_calibrations(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not a readable step-cost calibration: {e}") from e


def node_types(keys: dict[str, str]) -> dict[str, str]:
    """One node of each type: {node id: hardware key} -> {hardware key: first node id}."""
    out: dict[str, str] = {}
    for node in sorted(keys):
        out.setdefault(keys[node], node)
    return out


Measure = Callable[..., list[Calibration]]  # (node ids, config, kinds[, steps]) -> one per node


def experiment_calibrations(
    space: SearchSpace,
    fixed: dict[str, Any],
    experiment: Path,
    types: dict[str, str],
    measure: Measure,
    steps: int | None = None,
    before: Callable[[list[str]], None] = lambda keys: None,
) -> dict[str, Calibration]:
    """The experiment's tables: those `calibration.json` holds (a resumed search), plus one
    measured now by `measure` on a node of each type in `types` ({hardware key: node id}) that
    has none yet (`before` gets their keys first); written back when anything was added."""
    path = experiment / CALIBRATION_FILE
    have = read_calibrations(path) if path.is_file() else {}
    todo = sorted(key for key in types if key not in have)
    if not todo:
        return have
    before(todo)
    kwargs = {"steps": steps} if steps else {}
    nodes = [types[key] for key in todo]
    for calibration in measure(nodes, calibration_config(fixed), space_step_kinds(space), **kwargs):
        have[calibration.key] = calibration  # under the type it was measured on
    experiment.mkdir(parents=True, exist_ok=True)
    write_calibrations(have, path)
    return have


def tables(calibrations: dict[str, Calibration]) -> Tables:
    return {key: c.table for key, c in calibrations.items()}


def table_for(tables: Tables, key: str, node: str = "") -> dict[str, float]:
    """The step costs of node type `key`.

    Raises:
        SetupError: no table for that type (the trial fails once, with this message, and is
            not retried: another type's prices would be silently wrong).
    """
    if key in tables:
        return tables[key]
    where = f"node {node} " if node else "this node "
    raise SetupError(
        f"{where}is of a type with no step-cost table in {CALIBRATION_FILE}: {key!r} "
        f"(calibrated: {sorted(tables)}). It probably joined the cluster after the search "
        "started; `tune-app search --resume` calibrates it before any further trial runs."
    )


def run_calibration(
    config: TrialConfig,
    folder: Path,
    steps: int,
    warmup: int,
    before: Callable[[], None] = lambda: None,
) -> Tables:
    """`tune-app train`'s tables: `<folder>/calibration.json`, with this machine's type
    measured now (briefly, `steps` per kind; `before` is called first) if the file lacks it."""
    from trainers.calibrate import run_hardware_key
    from trainers.pricing import config_step_kinds

    path = folder / CALIBRATION_FILE
    have = read_calibrations(path) if path.is_file() else {}
    if run_hardware_key(config) not in have:
        before()
        calibration = calibrate(config, config_step_kinds(config), steps=steps, warmup=warmup)
        have[calibration.key] = calibration
        folder.mkdir(parents=True, exist_ok=True)  # the data loaded: the config is usable
        write_calibrations(have, path)
    return tables(have)


BUSY_WARNING = 0.5  # CPUs' worth of other processes' time while calibrating that is worth a word


def busy_warnings(calibrations: dict[str, Calibration]) -> list[str]:
    """A warning per table measured while other processes kept the machine busy.

    Calibration times one-thread CPU steps by CPU time, so waiting for a core does not count;
    but a memory-hungry neighbour on another core still slows each step through the shared
    cache and memory bus (by how much: benchmarks/calibration_replication.py).
    """
    out = []
    for key, cal in calibrations.items():
        busy = cal.settings.get("others_busy_cpus")
        if busy is not None and busy >= BUSY_WARNING:
            out.append(
                f"warning: other processes used {busy:.1f} CPUs while the step costs of {key} "
                "were calibrated; a busy neighbour can make every calibrated_latency_s read a "
                "few percent high. Configurations of this experiment share the table, so they "
                "still compare fairly; for costs comparable across experiments, calibrate on a "
                "quiet machine"
            )
    return out
