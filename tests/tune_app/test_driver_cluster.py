"""A two-node Ray cluster on one machine, GPUs declared without hardware."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.support import SPACE, digits_folder
from tune_app.cli import main
from tune_app.driver import RAY_ENV


@pytest.fixture(scope="module")
def two_nodes():
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    import ray
    from ray.cluster_utils import Cluster

    from tests.support import stop_ray

    stop_ray()  # the session's single-node Ray, if an earlier test started it

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "num_gpus": 1, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=2, num_gpus=1)
    ray.init(address=cluster.address, logging_level="WARNING")
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def search(tmp_path: Path, name: str, **changes: dict) -> pd.DataFrame:
    space = {
        **SPACE,
        "search": {"sampler": "random", "num_samples": 4, "max_concurrent": 4, "seed": 0},
        "baselines": {"pipelines": [], "seeds": [0]},
        "resources": {"cpu": 1, "gpu": 0.5},
        **changes,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(space))
    args = [
        "search",
        "--space",
        str(path),
        "--storage-path",
        str(tmp_path),
        "--name",
        name,
        "--wandb",
        "disabled",
    ]
    assert main(args) == 0
    return pd.read_parquet(tmp_path / name / "trials.parquet")


def span(trial_dir: Path) -> tuple[float, float]:
    rows = [json.loads(x) for x in (trial_dir / "result.json").read_text().splitlines()]
    return rows[0]["timestamp"] - rows[0]["time_this_iter_s"], rows[-1]["timestamp"]


def test_fractional_gpu_trials_pack_two_per_node(two_nodes, tmp_path: Path, capfd) -> None:
    # on a user's folder: the driver prepares it once under the storage path, which every node
    # reads (as Ray's storage must be), and the trials of both nodes map that one preparation
    trainer = {**SPACE["trainer"], **digits_folder(tmp_path)}
    table = search(tmp_path, "pack", trainer=trainer)
    assert len(table) == 4 and table["complete"].all()
    assert [p.name[:7] for p in (tmp_path / "data-cache").iterdir()] == ["digits-"]
    # Each trial got half a GPU; four of them fill both nodes, two per node AT THE SAME TIME.
    per_node = table.groupby("node_id").size()
    assert len(per_node) == 2 and set(per_node) == {2}
    for _, trials in table.groupby("node_id"):
        (s1, e1), (s2, e2) = (span(tmp_path / "pack" / t) for t in trials["trial_id"])
        assert max(s1, s2) < min(e1, e2), "the two trials of a node did not overlap"
    assert table["gpu_ids"].str.len().gt(0).all()
    # Ray handed out GPUs that torch cannot use: the trials fell back to the CPU and said so.
    err = capfd.readouterr().err
    assert "torch sees no CUDA device; running this trial on the CPU" in err
    # Both nodes are one type (same machine): probed both, calibrated once, and each node's
    # trials priced with that table.
    calibration = json.loads((tmp_path / "pack" / "calibration.json").read_text())
    (key,) = calibration["by_hardware"]
    assert "calibrating step costs (calibration.json) for 1 node type(s)" in err
    assert (table["node_type"] == key).all() and (table["calibrated_latency_s"] > 0).all()


def test_explicit_cuda_on_a_gpu_less_trial_fails_clearly(two_nodes, tmp_path: Path, capsys) -> None:
    trainer = {**SPACE["trainer"], "device": "cuda"}
    space = {
        **SPACE,
        "trainer": trainer,
        "baselines": {"pipelines": [], "seeds": [0]},
        "search": {"sampler": "random", "num_samples": 1, "max_concurrent": 1, "seed": 0},
        "resources": {"cpu": 1, "gpu": 0.5},
    }
    path = tmp_path / "cuda.yaml"
    path.write_text(yaml.safe_dump(space))
    args = [
        "search",
        "--space",
        str(path),
        "--storage-path",
        str(tmp_path),
        "--name",
        "cuda",
        "--wandb",
        "disabled",
    ]
    # The step-cost calibration runs first, as a Ray task holding one trial's resources (a GPU
    # here, declared without hardware): it meets the missing CUDA device before any trial runs.
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "step-cost calibration" in err and "'cuda' requested but torch sees no CUDA" in err
    assert "Traceback" not in err and not (tmp_path / "cuda" / "trials.parquet").exists()


def test_resources_no_node_can_hold_are_bad_input(two_nodes, tmp_path: Path, capsys) -> None:
    space = {**SPACE, "resources": {"cpu": 64, "gpu": 0}}
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(space))
    args = ["search", "--space", str(path), "--storage-path", str(tmp_path / "s")]
    assert main(args) == 2
    assert "resources" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
