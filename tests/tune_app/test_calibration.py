"""Per-node-type calibration: the hardware key, one table per type, and each trial's lookup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from search_spaces import load_space
from tests.support import SPACE, TINY_RUN
from trainers import SetupError, TrialConfig
from trainers.calibrate import Calibration, calibrate, hardware_key, run_hardware_key
from tune_app.calibration import (
    CALIBRATION_FILE,
    experiment_calibrations,
    node_types,
    read_calibrations,
    table_for,
    tables,
)

XEON = {"node": "host-a", "cpu": "Xeon 8480", "threads": 1, "device": "cpu"}
EPYC = {**XEON, "cpu": "EPYC 9654"}


def fake(hw: dict, seconds: float) -> Calibration:
    spread = {"min": seconds, "p25": seconds, "p75": seconds, "max": seconds}
    return Calibration({"sl": seconds}, {"sl": spread}, 1, 3, {"model": "m"}, hw, "2.x")


def test_the_key_leaves_out_the_host_and_keeps_what_prices_a_step() -> None:
    assert hardware_key(XEON) == hardware_key({**XEON, "node": "host-b"})
    others = [EPYC, {**XEON, "threads": 2}, {**XEON, "device": "cuda", "gpu": "A100"}]
    keys = {hardware_key(hw) for hw in [XEON, *others]}
    assert len(keys) == 4 and not any("host-a" in k for k in keys)
    assert hardware_key({**XEON, "device": "cuda", "gpu": "H100"}) != hardware_key(others[2])


def test_nodes_are_grouped_by_type_one_node_each() -> None:
    probes = {"n3": "B", "n1": "A", "n2": "A"}
    assert node_types(probes) == {"A": "n1", "B": "n3"}
    assert node_types({}) == {}


def space(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return load_space(str(path))


class FakeMeasure:
    """Stands for the Ray tasks: records which nodes it measured; node "e*" is an EPYC."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, nodes: list[str], config: TrialConfig, kinds: set[str]) -> list:
        self.calls.append(list(nodes))
        return [fake({**(EPYC if n.startswith("e") else XEON), "node": n}, 0.1) for n in nodes]


def test_one_calibration_per_type_and_only_new_types_on_resume(tmp_path: Path) -> None:
    s, measure = space(tmp_path), FakeMeasure()
    x, e = hardware_key(XEON), hardware_key(EPYC)
    types = node_types({"x1": x, "x2": x})  # two nodes of one type: measured once
    got = experiment_calibrations(s, {}, tmp_path, types, measure)
    assert measure.calls == [["x1"]] and set(got) == {x}
    # --resume, same cluster: read back, nothing measured
    assert tables(experiment_calibrations(s, {}, tmp_path, types, measure)) == {x: {"sl": 0.1}}
    assert measure.calls == [["x1"]]
    # --resume after an EPYC node joined: only that type is measured; the Xeon table is kept
    got = experiment_calibrations(s, {}, tmp_path, node_types({"x1": x, "e1": e}), measure)
    assert measure.calls == [["x1"], ["e1"]] and set(got) == {x, e}
    data = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    assert data["version"] == 2 and set(data["by_hardware"]) == {x, e}
    assert data["by_hardware"][x]["hardware"]["node"] == "x1"  # measured there, kept as a record
    assert read_calibrations(tmp_path / CALIBRATION_FILE) == got


def test_old_and_foreign_files_read_clearly(tmp_path: Path) -> None:
    path = tmp_path / CALIBRATION_FILE
    path.write_text(json.dumps({"version": 1, **fake(XEON, 0.2).to_dict()}))
    assert tables(read_calibrations(path)) == {hardware_key(XEON): {"sl": 0.2}}  # version 1
    path.write_text(json.dumps({"version": 3, "by_hardware": {}}))
    with pytest.raises(ValueError, match=rf"{CALIBRATION_FILE}.*version 3"):
        read_calibrations(path)
    path.write_text(json.dumps({"version": 2, "by_hardware": {"other": fake(XEON, 1).to_dict()}}))
    with pytest.raises(ValueError, match="'other' holds a table measured on"):
        read_calibrations(path)


def test_a_trial_on_a_type_without_a_table_fails_clearly() -> None:
    known = {hardware_key(XEON): {"sl": 0.1}}
    assert table_for(known, hardware_key(XEON)) == {"sl": 0.1}
    with pytest.raises(SetupError, match=r"node n9 is of a type with no step-cost table") as e:
        table_for(known, hardware_key(EPYC), "n9")
    assert hardware_key(EPYC) in str(e.value) and "--resume" in str(e.value)


def test_a_run_looks_up_the_key_its_calibration_was_stored_under() -> None:
    config = TrialConfig.from_dict({**TINY_RUN, "device": "cpu"})
    assert run_hardware_key(config) == calibrate(config, {"sl"}, steps=1, warmup=0).key
    with pytest.raises(SetupError, match="cuda"):
        run_hardware_key(config.replace(device="cuda"))
