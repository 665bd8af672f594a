"""The verdict's error rates on synthetic experiments (numpy only, no training).

Under the null (MixTraining equal to SSL+SL in distribution) a claim that some configuration
dominates SSL+SL is false; the analysis must make one in at most 5% of experiments. The power
at a known margin is recorded in docs/benchmarks.md (`tests/analysis/verdict_simulation.py`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis import analyze_experiment, load_experiment
from tests.analysis.verdict_simulation import SPACE, fill, simulate, template


def test_simulated_tables_are_real_trials_parquet(tmp_path: Path) -> None:
    """One simulated experiment, written and read as a real folder, gives the same claims."""
    import numpy as np
    import yaml

    from analysis.verdict import build_verdict

    table = fill(template(), "better", np.random.default_rng(1))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    table.to_parquet(tmp_path / "trials.parquet", index=False)
    a = analyze_experiment(load_experiment(tmp_path))
    metrics = [o["metric"] for o in SPACE["objectives"]]
    goals = [o["goal"] for o in SPACE["objectives"]]
    direct = build_verdict(table, metrics, goals, list(SPACE["parameters"]), samples=0)
    assert a.verdict.confirmed_dominance == direct.confirmed_dominance
    assert set(a.done["role"]) == {"search", "confirm", "baseline"}


@pytest.mark.timeout(300)  # over the default limit on two busy cores
@pytest.mark.parametrize(
    ("scenario", "experiments"), [("null_calibrated", 1000), ("null_measured", 200)]
)
def test_false_claim_rate_under_the_null_is_at_most_5_percent(
    scenario: str, experiments: int
) -> None:
    rates = simulate(scenario, experiments, seed=0)
    assert rates["any_claim"] <= 0.05, rates
    assert rates["single_claims"] == 0


def test_power_at_a_known_margin() -> None:
    rates = simulate("better", 200, seed=0)
    # +3 accuracy points (2.7 seed stds) and 5% cheaper, 3 seeds a side, Holm over 6 claims:
    # about a third of the truly better configurations are confirmed (0.339 over 1,000).
    assert rates["per_config"] > 0.25, rates
    assert rates["single_claims"] == 0
