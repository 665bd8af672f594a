"""Shared fixtures, markers, and the guard that keeps every test away from the real W&B."""

from __future__ import annotations

import os
import tempfile

import pytest

from tune_app.driver import RAY_ENV
from tune_app.orchestrate import CALIBRATION_STEPS_ENV

# Nothing listens on port 9 of this machine: a test that tries to reach W&B fails locally, and a
# developer's `wandb login` (~/.netrc for api.wandb.ai) does not match this host, so tune-app's
# default mode finds no credentials and never goes online.
UNREACHABLE_WANDB = "http://127.0.0.1:9"

# Fixtures that start Ray: a test using one is an orchestration test (`-m "not ray"` skips it).
RAY_FIXTURES = {"local_ray", "two_nodes"}


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if RAY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.ray)


@pytest.fixture(autouse=True)
def _no_real_wandb(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """W&B is disabled unless the test is marked `wandb_offline`; never a key, never the host."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", UNREACHABLE_WANDB)
    offline = request.node.get_closest_marker("wandb_offline") is not None
    monkeypatch.setenv("WANDB_MODE", "offline" if offline else "disabled")


@pytest.fixture(scope="module")
def local_ray():
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()
