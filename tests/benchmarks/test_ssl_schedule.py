"""benchmarks/ssl_schedule.py: the configs it trains and the table it prints (no training)."""

from __future__ import annotations

import statistics

import pytest
from scipy import stats

from benchmarks.ssl_schedule import FIXED, cell_config, summary_rows
from search_spaces import load_space


def test_cells_are_the_default_space_with_only_rho_schedule_seed_and_threads_changed() -> None:
    space = load_space("vit_mix_same")  # the space its recorded table used
    config = cell_config(space, "budget", 0.75, 2, 1)
    base = space.trial_config({**FIXED, "rho": 0.75}, "mixtraining", 2).to_dict()
    changed = {k for k, v in config.to_dict().items() if base[k] != v}
    assert changed == {"ssl_schedule", "num_threads"}
    assert (config.ssl_schedule, config.num_threads, config.rho, config.seed) == (
        "budget",
        1,
        0.75,
        2,
    )
    assert config.epochs_ssl == space.trainer["epochs_ssl"] and config.pipeline == "mixtraining"


def test_summary_rows_by_hand() -> None:
    phase = [0.60, 0.62, 0.61]
    budget = [0.70, 0.69, 0.73]
    results = {}
    for seed, (p, b) in enumerate(zip(phase, budget, strict=True)):
        results[0.5, "phase", seed] = {"val_accuracy": p, "test_accuracy": p - 0.01}
        results[0.5, "budget", seed] = {"val_accuracy": b, "test_accuracy": b - 0.01}
    rows = summary_rows(results)
    assert [r[:3] for r in rows] == [[0.5, "budget", "0 1 2"], [0.5, "phase", "0 1 2"]]
    b_row, p_row = rows
    mean, sd = statistics.fmean(budget), statistics.stdev(budget)
    assert b_row[3] == f"{mean:.4f} ± {sd:.4f}" and b_row[4] == "0.7000 0.6900 0.7300"
    p_value = stats.ttest_ind(budget, phase, equal_var=False).pvalue
    assert b_row[5] == f"{p_value:.3f}" and p_row[5] == "-"
    assert float(b_row[5]) == pytest.approx(p_value, abs=1e-3)
