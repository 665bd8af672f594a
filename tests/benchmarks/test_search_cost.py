"""benchmarks/search_cost.py: its cache model, its cost arithmetic, its trial list, one tiny run."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
import yaml

from benchmarks.search_cost import (
    confirm_trials,
    prefix_key,
    projected_cost,
    run_arm,
    simulate_reuse,
    total_rows,
    totals,
    trial_config,
    trial_rows,
)
from search_spaces import load_space
from tests.support import SPACE, TINY_RUN
from trainers import TrialConfig
from trainers.runtime import Runtime
from trainers.ssl_cache import ssl_key
from tune_app.suggestion import fixed_settings


def config(**changes) -> TrialConfig:
    base = {**TINY_RUN, "epochs_ssl": 4, "epochs_sl": 4, "seed": 0}
    return TrialConfig.from_dict({**base, **changes})


PHASE = [
    config(pipeline="ssl_sl"),
    config(rho=0.5),  # 2 SSL epochs: nothing of that span stored yet
    config(rho=0.5, alpha=0.9, anneal="cosine"),  # MIX-onward knobs only: shares all 2
    config(rho=0.75),  # 1 SSL epoch: a different cosine, a different key
    config(rho=0.5, seed=1),
    config(pipeline="sl"),
]
BUDGET = [
    config(pipeline="ssl_sl", ssl_schedule="budget"),  # stores 4 epochs of the 4-epoch cosine
    config(rho=0.5, ssl_schedule="budget"),
    config(rho=0.75, ssl_schedule="budget"),
    config(rho=0.5, ssl_schedule="budget", lr_ssl=1e-3),  # an SSL setting: a new key
    config(rho=0.5, ssl_schedule="budget", seed=1),
]


@pytest.mark.parametrize(("configs", "expected"), [(PHASE, [0, 0, 2, 0, 0, 0]),
                                                    (BUDGET, [0, 2, 1, 0, 0])])  # fmt: skip
def test_simulated_reuse_follows_the_cache_rule(configs, expected) -> None:
    assert simulate_reuse(configs) == expected


def test_the_model_key_agrees_with_the_cache_key() -> None:
    """Two trials share a model key exactly when the real cache gives them the same key."""
    rt = Runtime(torch.device("cpu"), False, 1)

    def real(c: TrialConfig) -> str:
        return ssl_key(c, rt, prefix_key(c)[1])

    for a, b in itertools.combinations(PHASE + BUDGET, 2):
        assert (prefix_key(a) == prefix_key(b)) == (real(a) == real(b)), (a, b)


def test_projected_cost_by_hand() -> None:
    """SSL+SL then MixTraining rho 0.5 (budget), 4 + 4 epochs, 2 steps of 64 per epoch."""
    configs = [BUDGET[0], BUDGET[1]]
    gflops = {"ssl": 1.0, "mix": 3.0, "sl": 2.0, "eval": 0.5}
    sizes = {"train": 130, "ssl": 130, "val": 10}  # 130 // 64 = 2 steps (drop-last)
    off = projected_cost(configs, gflops, sizes, savings=False)
    on = projected_cost(configs, gflops, sizes, savings=True)
    per_epoch = 128
    ssl_sl = 4 * per_epoch * 1 + 4 * per_epoch * 2
    mix = 2 * per_epoch * 1 + 2 * per_epoch * 3 + 2 * per_epoch * 2
    # validated epochs: SSL+SL 8, MixTraining 6 (each MIX epoch replaces an SSL and an SL one)
    assert off == {"train": ssl_sl + mix, "val": (8 + 6) * 10 * 0.5, "reused": 0.0}
    # on: the MixTraining trial's 2 SSL epochs come from the cache; no SSL epoch is validated
    assert on == {"train": ssl_sl + mix - 2 * per_epoch, "val": (4 + 4) * 10 * 0.5, "reused": 2.0}


def tiny_space(tmp_path: Path, **changes):
    raw = {**SPACE, **changes}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_space(str(path))


def test_confirm_trials_are_the_best_sampled_configurations(tmp_path: Path) -> None:
    search = {**SPACE["search"], "confirm": {"top_k": 1, "seeds": [1, 2]}}
    space = tiny_space(tmp_path, search=search)
    knobs = {"pipeline": "mixtraining", "alpha": 0.5, "lam": 0.5, "anneal": "none"}
    done = [
        {"role": "baseline", "pipeline": "ssl_sl", "seed": 0,
         "final": {"val_accuracy": 0.99, "train_latency_s": 1.0}},
        {"role": "search", **knobs, "rho": 0.6, "seed": 0,
         "final": {"val_accuracy": 0.5, "train_latency_s": 9.0}},
        {"role": "search", **knobs, "rho": 0.7, "seed": 0,  # dominates the other two
         "final": {"val_accuracy": 0.8, "train_latency_s": 5.0}},
        {"role": "search", **knobs, "rho": 0.8, "seed": 0,
         "final": {"val_accuracy": 0.6, "train_latency_s": 8.0}},
    ]  # fmt: skip
    got = confirm_trials(space, done)
    assert got == [{"role": "confirm", **knobs, "rho": 0.7, "seed": s} for s in (1, 2)]


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_both_arms_end_equal_and_the_on_arm_reuses_as_predicted(tmp_path: Path) -> None:
    """Real tiny runs (digits, 2 + 2 epochs, budget schedule): SSL+SL, then one MixTraining
    trial whose SSL epoch the cache holds. Savings off and on give the same final metrics;
    the on arm reuses what the model predicts and validates no SSL epoch."""
    trainer = {**SPACE["trainer"], "ssl_schedule": "budget"}
    params = {**SPACE["parameters"], "rho": {"value": 0.5}}
    search = {**SPACE["search"], "num_samples": 1}
    space = tiny_space(tmp_path, trainer=trainer, parameters=params, search=search,
                       baselines={"pipelines": ["ssl_sl"], "seeds": [0]})  # fmt: skip
    sampled = [{"alpha": 0.5, "lam": 0.5, "anneal": "none"}]
    costs = {"ssl": 1.0, "sl": 1.0, "mix_full": 1.0}  # calibrated compute = steps taken
    off = run_arm(space, sampled, costs, False, tmp_path / "off")
    on = run_arm(space, sampled, costs, True, tmp_path / "on")
    predicted = simulate_reuse([trial_config(space, fixed_settings(space), t) for t in on])
    assert predicted == [0, 1]
    assert [t["final"]["ssl_epochs_reused"] for t in on] == predicted
    for a, b in zip(off, on, strict=True):
        for metric in ("val_accuracy", "test_accuracy", "calibrated_latency_s"):
            assert a["final"][metric] == b["final"][metric]
    assert [t["final"]["ssl_validations"] for t in off] == [2, 1]
    assert totals(on)["ssl_validations"] == 0
    # steps: SSL+SL = 2 ssl + 2 sl epochs; MixTraining = 1 ssl + 1 mix + 1 sl, of which the on
    # arm runs the last two (a mix epoch has as many steps as an sl one): the saving is 1 ssl
    ssl_sl, mix_on = off[0]["final"], on[1]["final"]
    one_ssl_epoch = (ssl_sl["calibrated_compute_s"] - mix_on["calibrated_compute_s"]) / 2
    saved = off[1]["final"]["calibrated_compute_s"] - mix_on["calibrated_compute_s"]
    assert saved == one_ssl_epoch > 0
    assert all(row[3] == "yes" for row in trial_rows(off, on, predicted))
    ratio = total_rows(totals(off), totals(on))[-1]
    assert ratio[0] == "on / off" and float(ratio[2]) < 1


def test_an_unknown_space_exits_2_before_anything_runs(tmp_path: Path, capsys) -> None:
    from benchmarks.search_cost import main

    assert main(["--space", str(tmp_path / "missing.yaml"), "--paper-spaces"]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_an_unknown_paper_space_exits_2_before_anything_runs(capsys) -> None:
    """Checked when the arguments are read, not after the 45-minute comparison."""
    from benchmarks.search_cost import main

    with pytest.raises(SystemExit) as stop:
        main(["--paper-spaces", "vit_mix"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "'vit_mix'" in err and "vit_tiny_cifar10" in err
