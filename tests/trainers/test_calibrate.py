"""Step-cost calibration and `calibrated_latency_s` on the tiny model (vit_micro, digits)."""

from __future__ import annotations

import pytest

from tests.support import TINY_RUN
from trainers import SetupError, TrialConfig, run
from trainers.calibrate import Calibration, calibrate
from trainers.pipeline import Trainer, plan_for
from trainers.pricing import calibrated_seconds, config_step_kinds, step_kind
from trainers.runtime import resolve_runtime

ALL_KINDS = {"ssl", "sl", "mix_full", "mix_masked", "sl_mixup", "sl_cutmix", "sl_skip"}
# Powers of ten: each kind's step count can be read back from the sum.
COSTS = {"ssl": 1.0, "mix_full": 10.0, "sl": 100.0, "mix_masked": 1e3, "sl_mixup": 1e4}


def tiny(**overrides: object) -> TrialConfig:
    return TrialConfig.from_dict({**TINY_RUN, "seed": 1, **overrides})


def test_calibration_measures_every_kind_the_space_can_produce() -> None:
    cal = calibrate(tiny(), ALL_KINDS, steps=3, warmup=1)
    assert set(cal.table) == ALL_KINDS
    for kind, seconds in cal.table.items():
        s = cal.spread[kind]
        assert 0 < s["min"] <= seconds <= s["max"] and s["p25"] <= s["p75"]
    assert cal.settings["threads"] == 1 and cal.settings["batch_size"] == 64
    assert cal.settings["model"] == "vit_micro" and cal.hardware["device"] == "cpu"
    assert Calibration.from_dict(cal.to_dict()) == cal


def expected_counts(config: TrialConfig) -> list[dict[str, int]]:
    """Cumulative steps per kind after each epoch: phases x max(1, pool // batch)."""
    trainer = Trainer(config, resolve_runtime(config))
    counts: dict[str, int] = {}
    out = []
    for phase in trainer.phases:
        kind = step_kind(phase, config.mix_pass, None)
        counts[kind] = counts.get(kind, 0) + trainer.data.steps(phase)
        out.append(dict(counts))
    return out


@pytest.mark.parametrize("mix_pass", ["full", "masked"])
def test_calibrated_latency_is_steps_times_cost_exactly(mix_pass: str) -> None:
    config = tiny(mix_pass=mix_pass)
    reports: list[dict] = []
    run(config, lambda m, s: reports.append(m), step_costs=COSTS)
    expected = expected_counts(config)
    assert [e[0] for e in plan_for(config)] == ["ssl", "mix", "sl"]
    assert {f"mix_{mix_pass}", "ssl", "sl"} == set(expected[-1])
    for metrics, counts in zip(reports, expected, strict=True):
        want = sum(n * COSTS[k] for k, n in counts.items())
        assert metrics["calibrated_latency_s"] == want  # exact: integers times powers of ten
        assert metrics["train_latency_s"] > 0


def test_mixtrain_sl_steps_have_their_own_kind() -> None:
    config = tiny(sl_accel="mixup", rho=0.0)
    assert config_step_kinds(config) == {"ssl", "sl_mixup"}
    states: list[dict] = []
    run(config, lambda m, s: states.append(s), step_costs=COSTS)
    counts = states[-1]["step_counts"]
    assert set(counts) == {"ssl", "sl_mixup"} and counts["sl_mixup"] > 0


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_resume_keeps_counting() -> None:
    config = tiny()
    full: list[dict] = []
    run(config, lambda m, s: full.append(m), step_costs=COSTS)
    states: list[dict] = []

    class Stop(Exception):
        pass

    def stop_after_two(metrics: dict, state: dict) -> None:
        states.append(state)
        if metrics["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        run(config, stop_after_two, step_costs=COSTS)
    resumed = run(config, lambda m, s: None, states[-1], step_costs=COSTS)
    assert resumed["calibrated_latency_s"] == full[-1]["calibrated_latency_s"]


def test_a_table_missing_a_kind_is_a_setup_error() -> None:
    with pytest.raises(SetupError, match=r"no cost for step kind\(s\) \['mix_full'\]"):
        run(tiny(), lambda m, s: None, step_costs={"ssl": 1.0, "sl": 1.0})
    with pytest.raises(KeyError, match="sl_cutmix"):
        calibrated_seconds({"sl_cutmix": 2}, {"sl": 1.0})
    assert calibrated_seconds({"sl": 3, "mix_full": 0}, {"sl": 0.5}) == 1.5


def test_calibrating_for_a_missing_device_is_a_setup_error() -> None:
    with pytest.raises(SetupError, match="cuda"):
        calibrate(tiny(device="cuda"), {"sl"}, steps=1, warmup=0)


def test_no_table_no_metric() -> None:
    last = run(tiny(epochs_ssl=1, epochs_sl=1), lambda m, s: None)
    assert "calibrated_latency_s" not in last


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_train_command_calibrates_briefly_and_reuses_it_on_resume(tmp_path, capsys) -> None:
    import json

    import yaml

    from tune_app.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**TINY_RUN, "epochs_ssl": 1, "epochs_sl": 1}))
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(out)]) == 0
    (calibration,) = json.loads((out / "calibration.json").read_text())["by_hardware"].values()
    assert set(calibration["table"]) == {"ssl", "sl"} and calibration["steps"] == 5
    final = json.loads((out / "metrics.json").read_text())
    trainer = Trainer(tiny(epochs_ssl=1, epochs_sl=1), resolve_runtime(tiny()))
    want = sum(calibration["table"][p] * trainer.data.steps(p) for p in ("ssl", "sl"))
    assert final["calibrated_latency_s"] == pytest.approx(want, rel=1e-12)
    # --resume of a finished run: the calibration file is read back, not measured again.
    assert "calibrating step costs" in capsys.readouterr().err
    before = (out / "calibration.json").stat().st_mtime_ns
    assert main(["train", "--config", str(config), "--out", str(out), "--resume"]) == 0
    assert (out / "calibration.json").stat().st_mtime_ns == before
    assert "calibrating" not in capsys.readouterr().err
