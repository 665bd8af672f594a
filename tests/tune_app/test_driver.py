"""Which Ray a search joins, and storage paths that cannot work: exit 2, nothing written."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import ray
import yaml
from ray._private import services

from tests.support import SPACE
from tune_app import driver
from tune_app.cli import main
from tune_app.location import locate


def write_space(tmp_path: Path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return str(path)


def test_without_address_the_driver_starts_a_private_ray(monkeypatch) -> None:
    """A cluster named by RAY_ADDRESS (or left by `ray start`) is never joined silently."""
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    given = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: given.update(kw))
    assert driver.start_ray(None) is True
    # Ray's own resolution of what we passed: None means "start a new local instance".
    assert services.canonicalize_bootstrap_address(given["address"], None) is None
    driver.start_ray("auto")
    assert given["address"] == "auto"  # an explicit --address is passed through


def test_address_auto_without_a_cluster_exits_2(
    no_ray, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # No cluster anywhere: as Ray finds it on a machine where none runs (other test sessions
    # may run their own Ray on this machine, which "auto" would otherwise find).
    monkeypatch.setattr(services, "find_gcs_addresses", functools.cache(lambda: []))
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir: None)
    storage = tmp_path / "store"
    args = ["search", "--space", write_space(tmp_path), "--storage-path", str(storage)]
    assert main([*args, "--name", "a", "--wandb", "disabled", "--address", "auto"]) == 2
    err = capsys.readouterr().err
    assert "--address auto: cannot join a Ray cluster" in err and "Traceback" not in err
    assert not ray.is_initialized()
    assert not storage.exists()  # nothing written


@pytest.mark.parametrize(
    ("storage", "needle"),
    [
        ("ftp://host/exp", "unknown scheme 'ftp'"),
        ("{file}", "is a file, not a folder"),
        ("{file}/below", "is a file, not a folder"),
        ("s3://bucket/../x", "'..' are not allowed"),
    ],
)
def test_unusable_storage_paths_exit_2(tmp_path: Path, capsys, storage: str, needle: str) -> None:
    file = tmp_path / "a_file"
    file.write_text("x")
    storage = storage.format(file=file)
    args = ["search", "--space", write_space(tmp_path), "--storage-path", storage, "--dry-run"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and storage in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "tiny.yaml"]


def test_uri_storages_get_their_own_local_folders(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    a, b = locate("s3://a/x", "n"), locate("s3://b/x", "n")
    assert a.local != b.local and a.name == b.name == "n"
    assert a.local == tmp_path / "experiments" / "s3" / "a" / "x" / "n"
    assert a.ray == "s3://a/x/n"


NICENESS_PROBE = """
import os, sys
os.environ.pop("RAY_worker_niceness", None)
from tune_app import driver
assert driver.start_ray(None)
import ray
print(os.nice(0), ray.get(ray.remote(lambda: os.nice(0)).remote()))
ray.shutdown()
"""


@pytest.mark.timeout(300)  # over the default limit on two busy cores
@pytest.mark.ray
def test_trials_run_at_the_drivers_priority_not_rays_niceness_15() -> None:
    """Ray starts workers at niceness 15 by default, so any ordinary process on the machine
    starved the trials (and the calibration). A private Ray runs them at the driver's own."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", NICENESS_PROBE], capture_output=True, text=True, timeout=120,
        check=True,
    )  # fmt: skip
    driver_nice, worker_nice = map(int, out.stdout.split()[-2:])
    assert worker_nice == driver_nice
