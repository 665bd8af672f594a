"""Every private Ray, W&B and Optuna internal tune-app relies on, each behind one small adapter.

Product modules call these instead of touching a library's private names, so an upgrade that
moves one breaks here, and tests/tune_app/test_internals.py says which one (it checks each adapter
against the installed libraries, without a Ray cluster). Each adapter was checked against
ray 2.60.0, wandb 0.31.0 and optuna 5.1.0 (pyproject.toml's floors) and says which public API
is missing. When a library gains that API, switch the caller to it and delete the adapter.

Imports are inside the functions: importing this module costs nothing (no W&B, no Ray client).
"""

from __future__ import annotations

from typing import Any

# ------------------------------------------------------------------------------- Ray Tune


def restored_run_config(tuner: Any) -> Any:
    """The `RunConfig` of a `tune.Tuner` (callbacks included, as restored from `tuner.pkl`).

    Ray 2.60: `Tuner` has no public accessor for its run config; it keeps it in the private
    `_local_tuner` (a `TunerInternal`, whose `get_run_config()` is public on that private
    class), or under Ray client (ray://) in the actor `_remote_tuner`.
    """
    local = tuner._local_tuner
    if local is not None:
        return local.get_run_config()
    import ray

    return ray.get(tuner._remote_tuner.get_run_config.remote())


def checkpoint_index(name: str) -> int | None:
    """The index of a trial's checkpoint folder, from its name; None for any other name.

    Ray 2.60: Ray Tune names a trial's checkpoint folders with the private
    `StorageContext._make_checkpoint_dir_name` (`checkpoint_000003`, counting from 0), and no
    public API lists the checkpoints a trial has on storage (only the one Ray's snapshot names).
    """
    from ray.train._internal.storage import StorageContext

    digits = name.rpartition("_")[2]
    if not digits.isdigit() or StorageContext._make_checkpoint_dir_name(int(digits)) != name:
        return None
    return int(digits)


def checkpoint_metrics(trial: Any) -> dict[str, Any]:
    """The metrics a trial reported with the checkpoint its snapshot names ({} if none).

    Ray 2.60: `Trial.checkpoint` is public, but the metrics reported with it live only in the
    private `run_metadata.checkpoint_manager.latest_checkpoint_result`; a restored trial's
    iteration count starts from them.
    """
    result = trial.run_metadata.checkpoint_manager.latest_checkpoint_result
    return dict(result.metrics) if result is not None else {}


# ------------------------------------------------------------------- Ray Tune's OptunaSearch


def optuna_search_study(search: Any) -> Any:
    """The live `optuna.Study` of Ray's `OptunaSearch` (None before it is set up or restored).

    Ray 2.60: `OptunaSearch` keeps it in the private `_ot_study`, with no accessor; loading
    the study again by name would give a second object, not the one Ray tells results to.
    """
    return search._ot_study


def optuna_search_trials(search: Any) -> dict[str, Any]:
    """Ray's own map of Ray trial id -> `optuna.Trial` in an `OptunaSearch`; the mapping itself,
    so an entry added here is the trial Ray's `suggest` and `on_trial_complete` use.

    Ray 2.60: the private `_ot_trials`; `OptunaSearch` has no public way to bind a Ray trial
    to an existing study trial (`suggest` always asks Optuna for a new one).
    """
    return search._ot_trials


def optuna_trial_id(trial: Any) -> int:
    """The storage id of an `optuna.Trial` or `optuna.trial.FrozenTrial`.

    Optuna 5.1: only the private `_trial_id` holds it (`number` is public but counts within
    the study); `optuna.Trial(study, trial_id)` needs it to take over an existing trial.
    """
    return int(trial._trial_id)


# ------------------------------------------------------------ Ray's W&B integration (Ray 2.60)


class WandbCallbackHooks:
    """Ray's private per-trial hooks of `WandbLoggerCallback`, under public names.

    Put first in the bases (`class X(WandbCallbackHooks, WandbLoggerCallback)`), it turns Ray's
    calls into `start_routing`, `signal_end` and `forget`, which the subclass implements. Ray
    2.60 has no public way to choose where a trial's rows go: `log_trial_start` calls
    `_start_logging_actor`, `log_trial_end` calls `_signal_logging_actor_stop` and then
    `_cleanup_logging_actors`, which calls `_cleanup_logging_actor` for each trial whose
    future (`await_end`) is ready.
    """

    def start_routing(self, trial: Any, exclude: list[str], init: dict[str, Any]) -> None:
        raise NotImplementedError

    def signal_end(self, trial: Any) -> None:
        raise NotImplementedError

    def forget(self, trial: Any) -> None:
        raise NotImplementedError

    def _start_logging_actor(self, trial: Any, exclude_results: list[str], **init: Any) -> None:
        self.start_routing(trial, list(exclude_results), init)

    def _signal_logging_actor_stop(self, trial: Any) -> None:
        self.signal_end(trial)

    def _cleanup_logging_actor(self, trial: Any) -> None:
        self.forget(trial)


# `WandbLoggerCallback.__init__` sets these per-trial maps; `__del__` and
# `_cleanup_logging_actors` read them.
_ROUTING_STATE = (
    "_trial_logging_actors",
    "_trial_logging_futures",
    "_logging_future_to_trial",
    "_trial_queues",
)


def fresh_routing_state() -> dict[str, dict[Any, Any]]:
    """Empty per-trial maps of a `WandbLoggerCallback`, for a pickled copy (attribute -> {})."""
    return {name: {} for name in _ROUTING_STATE}


def is_routed(callback: Any, trial: Any) -> bool:
    """Whether the callback has a logging actor for this trial (Ray: `_trial_logging_actors`)."""
    return trial in callback._trial_logging_actors


def route_trial(callback: Any, trial: Any, actor: Any, queue: Any) -> None:
    """Make `queue.put(item)` receive this trial's items and `actor` count as its logging actor.

    Ray's `log_trial_result` and `log_trial_save` put `(queue_item(...), content)` pairs into
    `_trial_queues[trial]`; `_trial_logging_actors` says which trials have started.
    """
    callback._trial_logging_actors[trial] = actor
    callback._trial_queues[trial] = queue


def trial_queue(callback: Any, trial: Any) -> Any:
    """The queue `route_trial` gave this trial."""
    return callback._trial_queues[trial]


def await_end(callback: Any, trial: Any, future: Any) -> None:
    """Ray's `_cleanup_logging_actors` waits (`ray.wait`) on this future, then calls the hook
    `_cleanup_logging_actor` (`WandbCallbackHooks.forget`) for the trial."""
    callback._trial_logging_futures[trial] = future
    callback._logging_future_to_trial[future] = trial


def unroute_trial(callback: Any, trial: Any) -> None:
    """Drop the trial from the per-trial maps (what Ray's `_cleanup_logging_actor` does, less
    killing the actor)."""
    del callback._trial_queues[trial]
    del callback._trial_logging_futures[trial]
    del callback._trial_logging_actors[trial]


def default_excluded_results() -> list[str]:
    """The result keys Ray's `WandbLoggerCallback` never logs (class attribute
    `_exclude_results`, Ray 2.60: `done`, `should_checkpoint`)."""
    from ray.air.integrations.wandb import WandbLoggerCallback

    return list(WandbLoggerCallback._exclude_results)


def queue_item(name: str) -> Any:
    """A kind of item Ray's `WandbLoggerCallback` puts in a trial's queue: "END", "RESULT" or
    "CHECKPOINT" (Ray 2.60: members of the private enum `_QueueItem`)."""
    from ray.air.integrations.wandb import _QueueItem

    return _QueueItem[name]


def wandb_result_row(
    result: dict[str, Any], exclude: list[str], to_config: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What Ray's W&B logging actor makes of one Tune result: (row to log, config update).

    Excluded keys dropped, `to_config` keys (and `config`) moved to the config, values W&B
    cannot log dropped. Ray 2.60 does this in the private method
    `_WandbLoggingActor._handle_result`, which reads only `self._exclude`/`self._to_config`.
    """
    from types import SimpleNamespace

    from ray.air.integrations.wandb import _WandbLoggingActor

    fields = SimpleNamespace(_exclude=set(exclude), _to_config=set(to_config))
    return _WandbLoggingActor._handle_result(fields, result)  # type: ignore[arg-type]


def run_info_hook(run: Any) -> None:
    """Ray's hook for a new W&B run (the callable named by `WANDB_PROCESS_RUN_INFO_HOOK`), as
    Ray's own logging actor calls it; Ray 2.60: the private `_run_wandb_process_run_info_hook`."""
    from ray.air.integrations.wandb import _run_wandb_process_run_info_hook

    _run_wandb_process_run_info_hook(run)


# ---------------------------------------------------------------------------------- W&B


def quiet_wandb_settings(**public: Any) -> Any:
    """`wandb.Settings(**public)` that also collects no system metrics and no host metadata.

    wandb 0.31: only the internal settings `x_disable_stats` and `x_disable_meta` turn these
    off ("not ... part of the public API").
    """
    import wandb

    return wandb.Settings(x_disable_stats=True, x_disable_meta=True, **public)


def wandb_record_class() -> Any:
    """The protobuf message class `Record`, one per entry of a `run-<id>.wandb` file.

    wandb 0.31: the message is defined in `wandb.proto.wandb_internal_pb2`, and wandb ships no
    public reader of its run files (its core, in Go, writes them).
    """
    from wandb.proto import wandb_internal_pb2

    return wandb_internal_pb2.Record  # type: ignore[attr-defined]  # made at run time
