"""Exact reuse of SSL prefixes: a trial that starts from another's cached SSL epochs ends
tensor for tensor where it would have ended from scratch, having run only its remaining epochs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.support import TINY_RUN
from trainers import TrialConfig, run
from trainers.pipeline import Trainer
from trainers.runtime import resolve_runtime
from trainers.ssl_cache import SSLCache, ssl_key

BASE = {**TINY_RUN, "epochs_ssl": 3, "epochs_sl": 2, "rho": 0.5, "seed": 2}  # ssl ssl mix sl
# Metrics that do not measure wall-clock time: equal to the bit when the training is.
EXACT = ("epoch", "phase", "loss_ssl", "loss_sl", "val_accuracy", "train_gflops", "test_accuracy")


def config(**changes: Any) -> TrialConfig:
    return TrialConfig.from_dict({**BASE, **changes})


def trained(cfg: TrialConfig, cache: SSLCache | None, monkeypatch) -> tuple[list, dict, list]:
    """Rows, final state, and the phase of every epoch this run actually trained."""
    ran: list[str] = []
    original = Trainer.train_epoch

    def counting(self: Trainer, phase: str) -> dict:
        ran.append(phase)
        return original(self, phase)

    monkeypatch.setattr(Trainer, "train_epoch", counting)
    rows, states = [], []
    run(cfg, lambda m, s: (rows.append(m), states.append(s)), ssl_cache=cache)
    monkeypatch.setattr(Trainer, "train_epoch", original)
    return rows, states[-1], ran


def assert_same_training(a: tuple, b: tuple) -> None:
    (rows_a, state_a, _), (rows_b, state_b, _) = a, b
    assert [{k: r.get(k) for k in EXACT} for r in rows_a] == [
        {k: r.get(k) for k in EXACT} for r in rows_b
    ]
    for name, tensor in state_a["model"].items():
        assert torch.equal(tensor, state_b["model"][name]), name
    for i, per_param in state_a["optimizer"]["state"].items():
        for k, v in per_param.items():
            assert torch.equal(v, state_b["optimizer"]["state"][i][k]), (i, k)
    assert torch.equal(state_a["rng"]["torch"], state_b["rng"]["torch"])
    assert torch.equal(state_a["rng"]["data"], state_b["rng"]["data"])


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_reused_prefix_ends_identical_to_a_run_from_scratch(tmp_path: Path, monkeypatch) -> None:
    cache = SSLCache(tmp_path / "cache")
    producer = trained(config(alpha=0.3, lam=0.9), cache, monkeypatch)
    assert producer[2] == ["ssl", "ssl", "mix", "sl"] and producer[0][-1]["ssl_epochs_reused"] == 0
    consumer_cfg = config(alpha=0.7, lam=0.4, anneal="cosine")  # MIX-onward knobs only
    scratch = trained(consumer_cfg, None, monkeypatch)
    reused = trained(consumer_cfg, cache, monkeypatch)
    assert reused[2] == ["mix", "sl"]  # it trained only what the cache did not hold
    assert_same_training(scratch, reused)
    last = reused[0][-1]
    assert last["ssl_epochs_reused"] == 2 and [r["epoch"] for r in reused[0]] == [1, 2, 3, 4]
    # The recipe's cost includes the inherited epochs; this trial's own compute does not.
    inherited = producer[0][1]["train_latency_s"]
    assert reused[0][1]["train_latency_s"] == inherited
    assert last["compute_s"] == pytest.approx(last["train_latency_s"] - inherited)
    assert scratch[0][-1]["compute_s"] == scratch[0][-1]["train_latency_s"]


@pytest.mark.parametrize(
    "change", [{"lr_ssl": 3e-4}, {"mask_ratio": 0.5}, {"seed": 3}, {"labeled_fraction": 0.5}]
)
def test_an_ssl_setting_is_in_the_key_and_a_mix_knob_is_not(change: dict) -> None:
    rt = resolve_runtime(config())
    assert ssl_key(config(), rt, 2) != ssl_key(config(**change), rt, 2)
    assert ssl_key(config(), rt, 2) != ssl_key(config(), rt, 3)  # another SSL schedule span
    assert ssl_key(config(), rt, 2) == ssl_key(config(alpha=0.9, rho=0.9, lam=0.1), rt, 2)


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_changing_an_ssl_setting_means_no_reuse(tmp_path: Path, monkeypatch) -> None:
    cache = SSLCache(tmp_path / "cache")
    trained(config(), cache, monkeypatch)
    rows, _, ran = trained(config(lr_ssl=3e-4), cache, monkeypatch)
    assert ran == ["ssl", "ssl", "mix", "sl"] and rows[-1]["ssl_epochs_reused"] == 0


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_budget_schedule_chains_every_e_mix_from_the_ssl_sl_baseline(
    tmp_path: Path, monkeypatch
) -> None:
    """`budget`: the baseline's SSL cosine cut at the MIX boundary, so a trial with one MIX
    epoch reuses the baseline's first two SSL epochs, and ends as it would from scratch."""
    cache = SSLCache(tmp_path / "cache")
    baseline = trained(config(pipeline="ssl_sl"), cache, monkeypatch)
    assert baseline[2].count("ssl") == 3
    mix = config(ssl_schedule="budget")
    scratch = trained(mix, None, monkeypatch)
    reused = trained(mix, cache, monkeypatch)
    assert reused[2] == ["mix", "sl"] and reused[0][-1]["ssl_epochs_reused"] == 2
    assert_same_training(scratch, reused)
    # `phase` spans the trial's own SSL phase: another schedule, another key, no reuse.
    assert trained(config(), cache, monkeypatch)[2][:2] == ["ssl", "ssl"]


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_torn_or_foreign_entries_are_misses(tmp_path: Path, monkeypatch, capsys) -> None:
    cfg = config()
    cache = SSLCache(tmp_path / "cache")
    key = Trainer(cfg, resolve_runtime(cfg)).ssl_key
    for epoch in (1, 2):
        cache.path(key, epoch).parent.mkdir(parents=True, exist_ok=True)
    cache.path(key, 2).write_bytes(b"PK\x03\x04 torn")  # a half-written zip
    torch.save({"format": 1, "key": "someone-else", "epoch": 1, "state": {}}, cache.path(key, 1))
    rows, _, ran = trained(cfg, cache, monkeypatch)
    assert ran == ["ssl", "ssl", "mix", "sl"] and rows[-1]["ssl_epochs_reused"] == 0
    assert "ignoring" in capsys.readouterr().err
    # Existing entries are kept (first writer wins); a fresh cache gets both epochs, no temp files.
    fresh = SSLCache(tmp_path / "fresh")
    trained(cfg, fresh, monkeypatch)
    files = sorted(p.name for p in (fresh.root / key).iterdir())
    assert files == ["epoch-1.pt", "epoch-2.pt"]


def test_storing_the_same_entry_twice_keeps_one_whole_file(tmp_path: Path) -> None:
    cache = SSLCache(tmp_path)
    cache.store("k", 1, {"x": torch.ones(2)})
    cache.store("k", 1, {"x": torch.zeros(2)})  # a second producer of the same bits
    assert torch.equal(cache.load("k", 1)["x"], torch.ones(2))
    assert [p.name for p in (tmp_path / "k").iterdir()] == ["epoch-1.pt"]
    assert cache.load("k", 2) is None and cache.deepest("k", 5)[0] == 1
