"""Weights & Biases: one run per trial, offline-first, never able to fail a trial.

Offline runs live in `<experiment>/wandb/` and upload later with `wandb sync`. The W&B callback
runs in the driver and logs from one separate Ray actor per search phase (`_WandbHub`), which
holds every trial's run, so no W&B error can reach a trial; a W&B service that cannot be
reached at start turns the search offline with one notice.

Why one actor and not Ray's one-per-trial: each of Ray's per-trial logging actors is a new
process (plus a queue actor) that imports W&B and starts a W&B service, seconds of CPU per
trial, while logging itself is nearly free; what that costs a search, with and without the
hub, is measured in docs/benchmarks.md, "W&B logging overhead".
"""

from __future__ import annotations

import netrc
import os
import time
import urllib.error
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import ray
from ray.air.constants import TRAINING_ITERATION
from ray.air.integrations.wandb import WANDB_ENV_VAR, WandbLoggerCallback
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tune_app import _internals
from tune_app.scheduler import reported_results
from tune_app.searcher import resumed_in
from tune_app.settings import say
from tune_app.suggestion import suggested_config
from tune_app.wandb_records import logged_epochs, read_run, run_files

UPLOAD_TIMEOUT_S = 30  # Ctrl-C must not wait Ray's default 30 minutes for uploads


def has_credentials() -> bool:
    """An API key in the environment or in ~/.netrc for the W&B host (`wandb login`)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or ""
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):  # no ~/.netrc, unreadable, or malformed
        return False


def unreachable_reason() -> str | None:
    """Why online W&B cannot be used right now (None = it can)."""
    import wandb

    try:
        wandb.Api(timeout=15).viewer  # noqa: B018 - one authenticated round trip
    except Exception as e:  # any failure (network, key, service) means: go offline
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None


def resolve_mode(requested: str | None) -> str:
    """`None` = online when credentials are configured and W&B answers, else offline."""
    if requested == "disabled":
        return "disabled"
    if requested is None and not has_credentials():
        say("tune-app: no W&B credentials found; logging offline (upload later: wandb sync)")
        return "offline"
    if requested in (None, "online"):
        reason = unreachable_reason()
        if reason:
            say(f"tune-app: W&B unreachable ({reason}); logging offline instead")
            return "offline"
        return "online"
    return "offline"


def light_settings() -> Any:
    """W&B settings for a logging actor: no system-metrics sampling, console capture or host
    metadata. Those would describe the logging actor's own process, not the trial (which runs
    elsewhere), and their sampling took CPU from the trials on a small machine."""
    return _internals.quiet_wandb_settings(console="off")


def result_row(result: dict, exclude: list[str], to_config: list[str]) -> tuple[dict, dict]:
    """What W&B gets from one Tune result: Ray's filtering (excluded keys dropped, config keys
    moved to the config, non-numeric values dropped), plus `phase`, a string we log too."""
    log, config_update = _internals.wandb_result_row(result, exclude, to_config)
    if isinstance(result.get("phase"), str):
        log["phase"] = result["phase"]
    return log, config_update


class _WandbHub:
    """One Ray actor holding the W&B run of every trial of a search phase.

    Calls arrive from the driver in order (a Ray actor runs one caller's calls in submission
    order). Every `put` carries the trial's `wandb.init` arguments, so a hub that Ray restarted
    after a crash reopens a trial's run (`resume="allow"`, same id) for the rows that follow
    (tests/tune_app/test_wandb_log.py kills a hub mid-trial); rows W&B had not written before the
    crash are resent only by `--resume`.
    """

    def __init__(self, mode: str, wandb_dir: str) -> None:
        os.environ.update({"WANDB_MODE": mode, "WANDB_DIR": wandb_dir, "WANDB_SILENT": "true"})
        os.environ["WANDB_START_METHOD"] = "thread"  # already in a separate process
        # Own a W&B service instead of joining the one named in an inherited WANDB_SERVICE (set
        # when the process that started Ray had used W&B, e.g. a notebook): a killed hub's runs
        # stay open in a shared service, and its restart could not reopen them ("in use").
        os.environ.pop("WANDB_SERVICE", None)
        import wandb

        self._wandb = wandb
        self._runs: dict[str, Any] = {}

    def put(self, trial_id: str, item: tuple[Any, Any], start: dict[str, Any]) -> None:
        kind, content = item
        run = self._runs.get(trial_id)
        if run is None:
            if kind == _internals.queue_item("END"):
                return  # nothing was ever logged for it: no run to close
            run = self._runs[trial_id] = self._wandb.init(
                **start["init"], reinit="create_new", settings=light_settings()
            )
            run.config.update({"trial_log_path": start["logdir"]}, allow_val_change=True)
            _internals.run_info_hook(run)
        if kind == _internals.queue_item("END"):
            self._runs.pop(trial_id).finish()
        elif kind == _internals.queue_item("CHECKPOINT"):
            artifact = self._wandb.Artifact(name=f"checkpoint_{run.name}", type="model")
            artifact.add_dir(content)
            run.log_artifact(artifact)
        else:
            log, config_update = result_row(content, start["exclude"], start["to_config"])
            try:
                run.config.update(config_update, allow_val_change=True)
                run.log(log, step=log.get(TRAINING_ITERATION))
            except (urllib.error.HTTPError, FileNotFoundError) as e:  # as Ray's actor does
                say(f"tune-app: W&B did not log a row of {trial_id}: {e}")

    def close(self) -> int:
        """Finish every run still open (trials that never sent their end), then wait until
        W&B's service has written every run and exited; how many runs were open. The hub is
        killed next, and `ray.kill` SIGKILLs the worker's children, the service among them:
        `finish()` returns once the run's last message is sent, not once the service wrote it."""
        n = len(self._runs)
        for trial_id in list(self._runs):
            self._runs.pop(trial_id).finish()
        self._wandb.teardown()
        return n


class _HubQueue:
    """Stands in for Ray's per-trial queue: `put` sends the item to the hub for this trial."""

    def __init__(self, hub: Any, trial_id: str, start: dict[str, Any]) -> None:
        self.hub, self.trial_id, self.start = hub, trial_id, start

    def put(self, item: tuple[Any, Any]) -> Any:
        return self.hub.put.remote(self.trial_id, item, self.start)


class TrialLogger(_internals.WandbCallbackHooks, WandbLoggerCallback):
    """One W&B run per trial: id = Ray trial id, named `<pipeline>-<trial id>`, grouped by
    experiment, config = the full TrialConfig, history = one row per epoch.

    Ray calls `start_routing`, `signal_end` and `forget` through its private per-trial hooks
    (`_internals.WandbCallbackHooks`): each trial goes to this phase's one hub actor."""

    _hub: Any = None

    def __init__(
        self,
        *,
        fixed: dict[str, Any],
        experiment: Path,
        mode: str,
        project: str,
        group: str,
        entity: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> None:
        super().__init__(
            project=project,
            group=group,
            upload_timeout=UPLOAD_TIMEOUT_S,
            entity=entity,
            mode=mode,
            wandb_dir=str(experiment),
        )
        self.fixed, self.experiment, self.mode, self.tags = fixed, experiment, mode, tuple(tags)
        self._floor: dict[str, int] = {}
        self._caught_up = False

    def follow_move(self) -> None:
        """Write into the folder being resumed, not the one this logger was pickled with.

        Ray restores the callbacks from `tuner.pkl`, absolute experiment path included: a moved
        or copied experiment would otherwise log its W&B runs into the folder it came from.
        """
        moved = resumed_in()
        if moved is not None and Path(moved).resolve() != Path(self.experiment).resolve():
            self.experiment = Path(moved)
            self.kwargs["wandb_dir"] = str(moved)  # what each trial's logging actor is given

    def setup(self, *args: Any, **kwargs: Any) -> None:
        self.follow_move()
        # Ray checks for an API key unless WANDB_MODE says offline: set it first.
        os.environ.update({"WANDB_MODE": self.mode, "WANDB_DIR": str(self.experiment)})
        self._caught_up = False  # setup runs once per session; this object may come unpickled
        super().setup(*args, **kwargs)

    def log_trial_start(self, trial: Any) -> None:
        suggested = dict(trial.config)
        trial_config, role = suggested_config(self.fixed, suggested)
        config = {**trial_config.to_dict(), "role": role}
        pipeline = config["pipeline"]
        tags = list(dict.fromkeys([*self.tags, pipeline, role]))  # role: search|confirm|baseline
        # Epochs W&B already holds: sent in this session (the actor may not have written them
        # yet), or in any earlier run file of this trial.
        on_disk = logged_epochs(self.experiment / "wandb", trial.trial_id)
        self._floor[trial.trial_id] = max(self._floor.get(trial.trial_id, 0), on_disk)
        kwargs = dict(
            id=trial.trial_id,
            name=f"{pipeline}-{trial.trial_id}",
            resume="allow",
            group=self.group,
            project=self.project,
            config=config,
            tags=tags,
            allow_val_change=True,
        )
        kwargs.update({k: v for k, v in self.kwargs.items() if k not in kwargs})
        exclude = [*_internals.default_excluded_results(), *self.excludes, "config"]
        self.start_routing(trial, exclude, kwargs)
        self.backfill(trial)

    def start_routing(self, trial: Any, exclude: list[str], init: dict[str, Any]) -> None:
        """Route the trial to this phase's hub (started with the first trial) instead of
        starting a logging actor and a queue actor for it."""
        if _internals.is_routed(self, trial):
            return
        if self._hub is None:
            self._hub = self._new_hub()
        start = {
            "init": {**init, "mode": self.mode, "dir": self.kwargs["wandb_dir"]},
            "logdir": trial.local_path,
            "exclude": list(exclude),
            "to_config": list(self.AUTO_CONFIG_KEYS),
        }
        start["init"].pop("wandb_dir", None)
        _internals.route_trial(self, trial, self._hub, _HubQueue(self._hub, trial.trial_id, start))

    def _new_hub(self) -> Any:
        """This phase's one logging actor, on the driver's node (as Ray places its own)."""
        env = {k: os.environ[k] for k in (WANDB_ENV_VAR,) if k in os.environ}
        # Ray's stubs for ray.remote leave node affinity out, though Ray accepts it for actors.
        # Under Ray client, this node is the client server's (as for Ray's own actors).
        here: Any = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), False)
        hub_cls = ray.remote(
            num_cpus=0,
            scheduling_strategy=here,
            runtime_env={"env_vars": env},
            max_restarts=-1,
            max_task_retries=-1,
        )(_WandbHub)
        return hub_cls.remote(mode=self.mode, wandb_dir=self.kwargs["wandb_dir"])

    def signal_end(self, trial: Any) -> None:
        """The trial's run is finished by the call that carries its end: that call's result
        is what Ray waits for before it calls `forget` (Ray waits on the per-trial actor's
        loop)."""
        queue = cast(_HubQueue, _internals.trial_queue(self, trial))
        _internals.await_end(self, trial, queue.put((_internals.queue_item("END"), None)))

    def forget(self, trial: Any) -> None:
        """Forget a finished trial; the hub lives on for the others (Ray kills the actor)."""
        _internals.unroute_trial(self, trial)

    def close_hub(self) -> None:
        """Finish what is still open and stop the hub (at the end of the phase)."""
        if self._hub is None:
            return
        hub, self._hub = self._hub, None
        try:
            ray.get(hub.close.remote(), timeout=UPLOAD_TIMEOUT_S)
        except (ray.exceptions.RayError, TimeoutError) as e:
            say(f"tune-app: W&B logging actor did not close cleanly: {type(e).__name__}: {e}")
        ray.kill(hub)

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles callbacks into tuner.pkl: no actor handles or per-session state."""
        state = dict(self.__dict__)
        state.pop("_hub", None)
        state.update(_internals.fresh_routing_state())
        return state

    def backfill(self, trial: Any) -> None:
        """Send the epochs Ray recorded but W&B lost (a killed driver takes W&B's buffers with
        it, while the trial resumes after its checkpoint): Ray's result.json has them all."""
        for row in reported_results(trial):
            if row.get("epoch", 0) > self._floor.get(trial.trial_id, 0):
                self.log_trial_result(row.get("training_iteration", 0), trial, row)

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self.catch_up(trials)
        super().on_step_begin(iteration, trials, **info)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.catch_up(trials)  # a resumed experiment with nothing left to run takes no step
        super().on_experiment_end(trials, **info)
        self.close_hub()

    def catch_up(self, trials: list[Any]) -> None:
        """Once per session: trials that ended in an earlier session (a resumed experiment)
        never start again, so no callback would reach them; if a killed driver took their last
        W&B rows with it, resend those from Ray's result.json and close the run."""
        if self._caught_up:
            return
        self._caught_up = True
        for trial in trials:
            if trial.status not in ("TERMINATED", "ERROR") or _internals.is_routed(self, trial):
                continue
            last = last_reported_epoch(trial)
            if last > logged_epochs(self.experiment / "wandb", trial.trial_id):
                self.log_trial_start(trial)  # sends the missing epochs
                self.log_trial_end(trial, failed=trial.status == "ERROR")

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        if not _internals.is_routed(self, trial):
            self.log_trial_start(trial)
        epoch = result.get("epoch", 0)
        if epoch <= self._floor.get(trial.trial_id, 0):
            return  # W&B has this epoch already: each epoch is logged once
        self._floor[trial.trial_id] = epoch
        super().log_trial_result(iteration, trial, result)


def last_reported_epoch(trial: Any) -> int:
    return int(max((row.get("epoch", 0) for row in reported_results(trial)), default=0))


PARETO_PREFIX = "pareto-"
FLUSH_WAIT_S = 60.0


def log_pareto_run(experiment: Path, trials: list[dict[str, Any]], png: Path) -> Path | None:
    """Log the analysis as one extra "pareto" run in the trials' W&B group.

    `trials` are table rows (pipeline, knobs, objectives, `on_front`). Returns the run's local
    folder, or None when the search did not log to W&B. Offline searches stay offline.
    """
    trial_files = [
        f for f in run_files(experiment / "wandb") if not f.stem.startswith(f"run-{PARETO_PREFIX}")
    ]
    if not trial_files:
        return None
    # the first file that holds a run record: a killed trial can leave an empty one
    first = next((r for r in map(read_run, trial_files) if r.run_id), read_run(trial_files[0]))
    offline = any(f.parent.name.startswith("offline-run-") for f in trial_files)
    mode = "offline" if offline else resolve_mode("online")
    os.environ.update({"WANDB_MODE": mode, "WANDB_DIR": str(experiment), "WANDB_SILENT": "true"})
    import wandb

    run = wandb.init(
        project=first.project or None,
        entity=first.entity or None,
        group=first.group,
        name="pareto",
        id=f"{PARETO_PREFIX}{experiment.name}",
        job_type="analysis",
        tags=["pareto"],
        dir=str(experiment),
        mode=mode,
        resume="allow",
    )
    columns = list(trials[0]) if trials else ["trial_id"]
    table = wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in trials])
    run.log({"trials": table, "pareto": wandb.Image(str(png))})
    folder = Path(run.dir).parent
    run.finish()
    # wandb-core writes the run file from its own process; `finish` can return before the
    # exit record is on disk, so wait (bounded) until the folder printed holds the whole run.
    deadline = time.monotonic() + FLUSH_WAIT_S
    while time.monotonic() < deadline and not any(
        read_run(f).finished for f in folder.glob("run-*.wandb")
    ):
        time.sleep(0.2)
    return folder
