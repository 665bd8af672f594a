"""Shared fixtures, markers, and the guard that keeps every test away from the real W&B."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import FAKE_WANDB_KEY, stop_ray
from tune_app.driver import RAY_ENV
from tune_app.orchestrate import CALIBRATION_STEPS_ENV

# Nothing listens on port 9 of this machine: a test that tries to reach W&B fails locally, and a
# developer's `wandb login` (~/.netrc for api.wandb.ai) does not match this host, so tune-app's
# default mode finds no credentials and never goes online.
UNREACHABLE_WANDB = "http://127.0.0.1:9"

# Fixtures that start Ray: a test using one is an orchestration test (`-m "not ray"` skips it).
RAY_FIXTURES = {"local_ray", "two_nodes", "finished_search"}


def pytest_configure(config: pytest.Config) -> None:
    """Before any fixture, Ray worker or subprocess starts: no W&B key, no real W&B host."""
    os.environ.pop("WANDB_API_KEY", None)
    os.environ["WANDB_BASE_URL"] = UNREACHABLE_WANDB
    os.environ["WANDB_MODE"] = "disabled"
    # Prepared image folders go to a temp folder of this session, never the user's cache.
    os.environ["TUNE_APP_DATA_CACHE"] = tempfile.mkdtemp(prefix="tune-app-data-cache-")
    # A search's step-cost calibration measures a few steps per kind, not 60: the tests need a
    # table, not a precise one (tests of the calibration itself pass their own step counts).
    os.environ.setdefault(CALIBRATION_STEPS_ENV, "5")


# A test that starts Ray or a search driver may take this long (the default limit is
# pyproject.toml's `timeout`, for everything else).
RAY_TIMEOUT_S = 600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if RAY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.ray)
        if item.get_closest_marker("ray") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(RAY_TIMEOUT_S))
    # The longest tests first (Ray tests, then unit tests with a longer time limit): parallel
    # workers (make test's `-n`) then end together instead of one finishing a search alone at
    # the end. Within each kind, the files' order. The first reader of `finished_search` goes
    # first and runs it; the other readers go after the other Ray tests, when it has finished,
    # instead of waiting on its lock at the start.
    readers = [item for item in items if "finished_search" in getattr(item, "fixturenames", ())]

    def rank(item: pytest.Item) -> int:
        if item in readers:
            return 0 if item is readers[0] else 2
        if item.get_closest_marker("ray"):
            return 1
        return 3 if item.get_closest_marker("timeout") else 4

    items.sort(key=rank)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A worker past its Ray tests (they run first) stops its idle Ray: an idle local Ray takes
    about a tenth of a core (3.3 s of CPU in 30 s, its daemons and workers together), which the
    unit tests after it would lose for the rest of the session. A later test that needs Ray
    starts it again (`ensure_ray`)."""
    if not item.get_closest_marker("ray"):
        stop_ray()


@pytest.fixture(autouse=True)
def _no_real_wandb(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """W&B is disabled unless the test is marked `wandb_offline`; never a key, never the host."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", UNREACHABLE_WANDB)
    offline = request.node.get_closest_marker("wandb_offline") is not None
    monkeypatch.setenv("WANDB_MODE", "offline" if offline else "disabled")


def ensure_ray() -> Any:
    """This test process's Ray: started by the first test that asks, kept for the rest of the
    session (one start per pytest process, not one per module), stopped at the session's end.
    A search run in-process joins it, as `tune-app search` joins a running Ray."""
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    import ray

    if not ray.is_initialized():
        # "local": a private Ray, never another test process's (`ray.init()` alone joins the
        # cluster the machine started last, e.g. a parallel test worker's).
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    return ray


@pytest.fixture
def local_ray():
    return ensure_ray()


@dataclass(frozen=True)
class FinishedSearch:
    """A small search that ran to its end: the folder, what the driver wrote on stderr, and how
    many W&B logging hubs it started."""

    experiment: Path
    err: str
    hubs: int

    def copy_to(self, folder: Path) -> Path:
        """A copy of the experiment to write into (analyze, export, wandb sync)."""
        target = folder / self.experiment.name
        shutil.copytree(self.experiment, target)
        return target


@pytest.fixture(scope="session")
def finished_search(tmp_path_factory: pytest.TempPathFactory) -> FinishedSearch:
    """One finished search for the tests that only read one, run once per `pytest` command: the
    first worker that needs it runs it under a lock, the others wait and read it. The shared tiny
    space (3 sampled trials, the sl and ssl_sl baselines, then the best 2 configurations again
    with seed 1 as a confirmation phase: 7 trials), W&B's default mode with a key it cannot use
    (so offline runs, project `tune-app-test`, tag `ci`). Never write into it: copy it first
    (`copy_to`)."""
    # Under pytest-xdist each worker's temp folder is inside the command's: share that one.
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "finished_search"
    with open(shared / "finished_search.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        record = root / "record.json"
        if not record.exists():
            err, hubs = run_finished_search(root)
            record.write_text(json.dumps({"err": err, "hubs": hubs}))
        ran = json.loads(record.read_text())
    return FinishedSearch(root / "w", ran["err"], ran["hubs"])


def run_finished_search(root: Path) -> tuple[str, int]:
    """Run `finished_search`'s search into `root`; what it wrote on stderr, the hubs started."""
    import contextlib
    import io

    import yaml

    from tests.support import SPACE
    from tune_app.cli import main
    from tune_app.wandb_log import TrialLogger

    ensure_ray()
    shutil.rmtree(root, ignore_errors=True)  # a worker's earlier attempt that failed
    root.mkdir(parents=True)
    path = root / "w.yaml"
    wandb = {"project": "tune-app-test", "tags": ["ci"]}
    search = {**SPACE["search"], "confirm": {"top_k": 2, "seeds": [1]}}
    path.write_text(yaml.safe_dump({**SPACE, "search": search, "wandb": wandb}))
    hubs: list[object] = []  # logging actors started: one a phase, not one a trial
    new_hub = TrialLogger._new_hub

    def counted(self: TrialLogger) -> object:
        hubs.append(new_hub(self))
        return hubs[-1]

    err = io.StringIO()
    with pytest.MonkeyPatch.context() as m, contextlib.redirect_stderr(err):
        m.setenv("HOME", str(root / "home"))
        m.setenv("WANDB_API_KEY", FAKE_WANDB_KEY)
        m.setenv("WANDB_MODE", "offline")
        m.setattr(TrialLogger, "_new_hub", counted)
        code = main(["search", "--space", str(path), "--storage-path", str(root), "--name", "w"])
    assert code == 0, err.getvalue()[-3000:]
    return err.getvalue(), len(hubs)


@pytest.fixture
def no_ray() -> None:
    stop_ray()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_ray()
