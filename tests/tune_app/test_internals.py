"""The private Ray, W&B and Optuna internals of tune_app/_internals.py still work as assumed.

Each adapter is called on a small real object of the installed library (no Ray cluster): when
an upgrade moves or renames the internal, its test fails and names it. The floors test checks
pyproject.toml against what is installed, and the scan keeps private names out of every other
product module.
"""

from __future__ import annotations

import ast
import sys
import types
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.support import ROOT
from tune_app import _internals

# The versions each adapter was checked against (_internals.py's docstring); the floors in
# pyproject.toml must not claim support below them.
CHECKED_AGAINST = {"ray": "2.60.0", "wandb": "0.31.0", "optuna": "5.1.0"}


def moved(what: str, version_of: str) -> str:
    return (
        f"{what} moved or changed in {version_of} {metadata.version(version_of)} (checked "
        f"against {CHECKED_AGAINST[version_of]}): update tune_app/_internals.py, or use the "
        "public API that replaces it"
    )


# ---------------------------------------------------------------------------- Ray Tune


def test_restored_run_config_reads_a_tuners_run_config(tmp_path: Path) -> None:
    from ray import tune
    from ray.tune.impl.tuner_internal import TunerInternal

    def trainable(config: dict[str, Any]) -> None:
        pass

    callback = tune.Callback()
    run_config = tune.RunConfig(name="x", storage_path=str(tmp_path), callbacks=[callback])
    tuner = tune.Tuner(trainable, run_config=run_config)
    assert hasattr(tuner, "_local_tuner"), moved("Tuner._local_tuner", "ray")
    assert restored_callbacks(tuner) == [callback], moved("Tuner's run config", "ray")
    # Under Ray client the same TunerInternal runs as the actor `_remote_tuner`.
    assert "_remote_tuner" in tune.Tuner.__annotations__, moved("Tuner._remote_tuner", "ray")
    assert callable(getattr(TunerInternal, "get_run_config", None)), moved(
        "TunerInternal.get_run_config", "ray"
    )


def restored_callbacks(tuner: Any) -> list[Any]:
    return list(_internals.restored_run_config(tuner).callbacks)


def test_checkpoint_index_reads_the_names_ray_gives_checkpoint_folders() -> None:
    from ray.train._internal.storage import StorageContext

    make = getattr(StorageContext, "_make_checkpoint_dir_name", None)
    assert callable(make), moved("StorageContext._make_checkpoint_dir_name", "ray")
    assert _internals.checkpoint_index(make(7)) == 7, moved("checkpoint folder names", "ray")
    assert _internals.checkpoint_index("checkpoint_000012") == 12
    for other in ("checkpoint_tmp", "checkpoint_12", "result.json", "checkpoint_", "x_000001"):
        assert _internals.checkpoint_index(other) is None, other


def test_checkpoint_metrics_reads_what_ray_keeps_with_a_trials_checkpoint() -> None:
    from ray.tune.experiment import Trial

    trial = Trial("trainable", stub=True)
    manager = getattr(getattr(trial, "run_metadata", None), "checkpoint_manager", None)
    assert hasattr(manager, "latest_checkpoint_result"), moved("Trial's checkpoint manager", "ray")
    assert _internals.checkpoint_metrics(trial) == {}  # no checkpoint yet
    # with one, the metrics are read from a real snapshot in test_checkpoints.py


def test_trial_storage_is_a_developer_api_with_the_fields_we_read(tmp_path: Path) -> None:
    """Not private, but "may change without notice between minor versions": the trial's
    `storage` (tune_app.wandb_log reads result.json through it; tune_app.trial finds the SSL
    cache through `tune.get_context().get_storage()`)."""
    import pyarrow.fs
    from ray import tune
    from ray.train._internal.storage import StorageContext

    storage = StorageContext(str(tmp_path), "exp", trial_dir_name="t0")
    why = moved("StorageContext", "ray")
    assert isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem), why
    assert storage.experiment_fs_path == (tmp_path / "exp").as_posix(), why
    assert storage.trial_fs_path == (tmp_path / "exp" / "t0").as_posix(), why
    assert callable(getattr(tune.get_context(), "get_storage", None)), moved(
        "TuneContext.get_storage", "ray"
    )


# ------------------------------------------------------------------- Ray's OptunaSearch


def test_optuna_search_adapters_bind_a_ray_trial_to_an_existing_study_trial() -> None:
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = OptunaSearch(
        space={"x": optuna.distributions.FloatDistribution(0.0, 1.0)},
        metric="y",
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    first = search.suggest("t0")
    study = _internals.optuna_search_study(search)
    assert isinstance(study, optuna.Study), moved("OptunaSearch._ot_study", "ray")
    trials = _internals.optuna_search_trials(search)
    assert isinstance(trials, dict) and isinstance(trials.get("t0"), optuna.Trial), moved(
        "OptunaSearch._ot_trials", "ray"
    )
    (frozen,) = study.get_trials()
    trial_id = _internals.optuna_trial_id(frozen)
    assert trial_id == _internals.optuna_trial_id(trials["t0"]), moved("Trial._trial_id", "optuna")
    # What ExperimentSearch does with an orphan: Ray's suggest uses the entry it finds.
    trials["t1"] = optuna.Trial(study, trial_id)
    assert search.suggest("t1") == first, moved("OptunaSearch.suggest's use of _ot_trials", "ray")
    assert len(study.get_trials()) == 1


# ---------------------------------------------------------- Ray's W&B integration


class ListQueue:
    def __init__(self) -> None:
        self.items: list[tuple[Any, Any]] = []

    def put(self, item: tuple[Any, Any]) -> None:
        self.items.append(item)


class Routed(_internals.WandbCallbackHooks):
    """A WandbLoggerCallback whose trials go to a list, through the adapters."""

    queue: ListQueue

    def start_routing(self, trial: Any, exclude: list[str], init: dict[str, Any]) -> None:
        self.started = (exclude, init)
        _internals.route_trial(self, trial, "actor", self.queue)

    def signal_end(self, trial: Any) -> None:
        _internals.trial_queue(self, trial).put((_internals.queue_item("END"), None))
        _internals.await_end(self, trial, "end-future")

    def forget(self, trial: Any) -> None:
        _internals.unroute_trial(self, trial)


class FakeTrial:
    trial_id = "t0"
    config: dict[str, Any] = {"lr": 0.1}
    experiment_dir_name = "exp"


def test_ray_calls_the_wandb_hooks_and_reads_the_routing_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray's public WandbLoggerCallback methods go through the private hooks and per-trial maps
    the adapters set: start -> rows into the trial's queue -> end -> wait -> forget."""
    import ray
    from ray.air.integrations.wandb import WandbLoggerCallback

    cls = type("RoutedWandb", (Routed, WandbLoggerCallback), {})
    callback: Any = cls(project="p", group="g")
    callback.queue = ListQueue()
    trial = FakeTrial()
    assert set(_internals.fresh_routing_state()) <= set(vars(callback)), moved(
        "WandbLoggerCallback's per-trial maps", "ray"
    )

    callback.log_trial_start(trial)
    assert hasattr(callback, "started"), moved("WandbLoggerCallback._start_logging_actor", "ray")
    exclude, init = callback.started
    assert set(_internals.default_excluded_results()) <= set(exclude)
    assert init["id"] == "t0" and init["group"] == "g"
    assert _internals.is_routed(callback, trial)

    callback.log_trial_result(1, trial, {"epoch": 1})
    assert callback.queue.items == [(_internals.queue_item("RESULT"), {"epoch": 1})], moved(
        "WandbLoggerCallback's use of _trial_queues", "ray"
    )

    waited: list[Any] = []

    def wait(futures: list[Any], **_: Any) -> tuple[list[Any], list[Any]]:
        waited.extend(futures)
        return list(futures), []

    monkeypatch.setattr(ray, "wait", wait)
    callback.log_trial_end(trial)
    assert callback.queue.items[-1] == (_internals.queue_item("END"), None), moved(
        "WandbLoggerCallback._signal_logging_actor_stop", "ray"
    )
    assert waited == ["end-future"], moved("WandbLoggerCallback._trial_logging_futures", "ray")
    assert not _internals.is_routed(callback, trial), moved(
        "WandbLoggerCallback._cleanup_logging_actor", "ray"
    )


def test_default_excluded_results_and_queue_items() -> None:
    excluded = _internals.default_excluded_results()
    assert "done" in excluded, moved("WandbLoggerCallback._exclude_results", "ray")
    kinds = {_internals.queue_item(name) for name in ("END", "RESULT", "CHECKPOINT")}
    assert len(kinds) == 3, moved("ray.air.integrations.wandb._QueueItem", "ray")


def test_wandb_result_row_filters_as_rays_logging_actor() -> None:
    result = {
        "epoch": 2,
        "val": {"acc": 0.5},
        "done": False,
        "phase": "sl",  # a string: not loggable by Ray's rules
        "trial_id": "t0",
        "config": {"lr": 0.1},
    }
    log, config = _internals.wandb_result_row(result, ["done", "config"], ["trial_id"])
    why = moved("_WandbLoggingActor._handle_result", "ray")
    assert log == {"epoch": 2, "val/acc": 0.5}, why
    assert config == {"lr": 0.1, "trial_id": "t0"}, why


def test_run_info_hook_calls_the_hook_named_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ray.air.integrations.wandb import WANDB_PROCESS_RUN_INFO_HOOK

    seen: list[Any] = []
    module = types.ModuleType("tune_app_test_run_info_hook")
    module.hook = seen.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setenv(WANDB_PROCESS_RUN_INFO_HOOK, f"{module.__name__}.hook")
    _internals.run_info_hook("run")
    assert seen == ["run"], moved("_run_wandb_process_run_info_hook", "ray")


# ----------------------------------------------------------------------------- W&B


def test_quiet_wandb_settings_are_accepted_by_wandb() -> None:
    settings = _internals.quiet_wandb_settings(console="off")  # wandb.Settings forbids extras
    assert settings.x_disable_stats and settings.x_disable_meta and settings.console == "off"


def test_wandb_record_has_the_fields_the_run_file_reader_reads() -> None:
    """tune_app.wandb_records reads these fields of each Record; round trip one of each kind."""
    from tune_app.wandb_records import _items

    record_class = _internals.wandb_record_class()
    kinds = {f.name for f in record_class.DESCRIPTOR.oneofs_by_name["record_type"].fields}
    assert {"run", "config", "history", "summary", "exit"} <= kinds, moved(
        "wandb_internal_pb2.Record", "wandb"
    )
    record = record_class()
    try:
        record.run.run_id, record.run.display_name, record.run.run_group = "r", "n", "g"
        record.run.project, record.run.entity = "p", "e"
        record.run.tags.append("t")
        item = record.run.config.update.add()
        item.key, item.value_json = "lr", "0.1"
        nested = record_class().history.item.add()
        nested.nested_key.extend(["val", "acc"])
    except (AttributeError, TypeError, ValueError) as e:
        raise AssertionError(moved(f"a field of wandb_internal_pb2.Record ({e})", "wandb")) from e
    parsed = record_class()
    parsed.ParseFromString(record.SerializeToString())
    assert parsed.WhichOneof("record_type") == "run"
    assert _items(parsed.run.config.update) == {"lr": 0.1}
    assert list(parsed.run.tags) == ["t"] and parsed.run.run_group == "g"


# ------------------------------------------------------------------------ version floors


def floors() -> dict[str, Version]:
    """[project].dependencies of pyproject.toml: distribution name -> its `>=` floor."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        for spec in req.specifier:
            if spec.operator == ">=":
                out[req.name] = Version(spec.version)
    return out


def test_installed_versions_meet_the_floors_in_pyproject() -> None:
    """A floor above what is installed (and tested) here is a broken floor, or a stale venv."""
    below = {}
    for name, floor in floors().items():
        installed = Version(metadata.version(name))
        if installed.release < floor.release:  # 2.4.1+cu121 meets 2.4
            below[name] = f"installed {installed} < floor {floor}"
    assert not below, below


def test_floors_claim_no_version_the_internals_were_not_checked_against() -> None:
    """ray/wandb/optuna floors must not drop below the versions _internals.py was checked on."""
    found = floors()
    for name, checked in CHECKED_AGAINST.items():
        floor = found[name]
        assert floor.release >= Version(checked).release[:2], (
            f"{name}>={floor} in pyproject.toml, but tune_app/_internals.py was checked against "
            f"{checked} only: check the adapters against {floor} first"
        )
        assert f"{name} {checked}" in (_internals.__doc__ or ""), (name, checked)


# ------------------------------------------------------ no private names elsewhere

LIBRARIES = ("ray", "wandb", "optuna")
# Private attributes of Ray/W&B/Optuna objects that only _internals.py may touch.
PRIVATE_ATTRIBUTES = {
    "_local_tuner",
    "_remote_tuner",
    "_ot_trials",
    "_ot_study",
    "_trial_id",
    "_trial_logging_actors",
    "_trial_logging_futures",
    "_logging_future_to_trial",
    "_trial_queues",
    "_exclude_results",
    "_handle_result",
}
# Known leftovers in files another change is moving: each has an adapter in _internals.py that
# the file should call instead (then delete its entry here).
PENDING: dict[str, set[str]] = {}


def private_uses(path: Path) -> set[str]:
    """Private Ray/W&B/Optuna modules, names and attributes a module uses."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] in LIBRARIES:
                if any(p.startswith("_") or "internal" in p for p in parts):
                    found.add(node.module)
                found |= {a.name for a in node.names if a.name.startswith("_")}
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] in LIBRARIES and any(p.startswith("_") for p in parts):
                    found.add(a.name)
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRIBUTES:
            found.add(node.attr)
    return found


def test_only_internals_touches_private_library_names() -> None:
    leaks = {}
    for path in sorted((ROOT / "tune_app").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "tune_app/_internals.py":
            continue
        uses = private_uses(path) - PENDING.get(rel, set())
        if uses:
            leaks[rel] = sorted(uses)
    assert not leaks, f"private Ray/W&B/Optuna names outside tune_app/_internals.py: {leaks}"
