"""mixTrain's selective-mixing thresholds: running averages of the epoch means, resumable."""

from __future__ import annotations

import io

import pytest
import torch

from trainers.accel import InputMixer, assign_regions, epoch_means

T, F = True, False
# A hand-made history over 8 samples, one row per epoch: losses and correct flags (the flags
# of a sample trained mixed are ignored: `record` keeps its last unmixed verdict).
HISTORY = [
    # epoch 1, nothing mixed: L_corr = (0.1 + 0.2 + 0.3 + 0.4 + 1.8) / 5 = 0.56,
    # L_incorr = (2 + 3 + 4) / 3 = 3.0; L_mid = 1.78 -> samples 0-3 mixed
    ([0.1, 0.2, 0.3, 0.4, 1.8, 2.0, 3.0, 4.0], [T, T, T, T, T, F, F, F]),
    # epoch 2, 0-3 mixed: epoch means over 4-7 are (1.9 + 1.5) / 2 = 1.7, (2.2 + 3.8) / 2 = 3.0
    ([0.2, 0.2, 0.2, 0.2, 1.9, 1.5, 2.2, 3.8], [T, T, T, T, T, T, F, F]),
    # epoch 3, 0-5 mixed: 6 and 7 both correct, mean 1.5; no incorrect unmixed sample
    ([0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 1.0, 2.0], [T, T, T, T, T, T, T, T]),
]
# Running averages by hand: L_corr over 1, 2, 3 epochs; L_incorr over epochs 1 and 2 only.
THRESHOLDS = [(0.56, 3.0), ((0.56 + 1.7) / 2, 3.0), ((0.56 + 1.7 + 1.5) / 3, 3.0)]
# L_mid: 1.78, then 2.065 (sample 6 at 2.2 stays unmixed), then 2.1267 (all below it).
MIXED = [[T, T, T, T, F, F, F, F], [T, T, T, T, T, T, F, F], [T] * 8]


def train_epoch(mixer: InputMixer, epoch: int, generator: torch.Generator) -> None:
    """One epoch whose every item reports the history's losses (exact for composites too)."""
    loss, correct = torch.tensor(HISTORY[epoch][0]), torch.tensor(HISTORY[epoch][1])
    a, b, _ = mixer.epoch_items(generator)
    mixer.record(a, b, loss[a], loss[b], correct[a])
    mixer.end_epoch()


def test_epoch_means_per_group() -> None:
    loss = torch.tensor([0.1, 0.3, 2.0, 4.0, float("nan")])
    correct = torch.tensor([True, True, False, False, True])
    unmixed = torch.tensor([True, True, True, False, True])
    assert epoch_means(loss, correct, unmixed) == pytest.approx((0.2, 2.0))
    assert epoch_means(loss, correct, correct) == (pytest.approx(0.2), None)


@pytest.mark.parametrize("mode", ["mixup", "cutmix"])
def test_thresholds_are_running_averages_over_all_epochs(mode: str) -> None:
    mixer = InputMixer(mode, 8, 0.5)
    g = torch.Generator().manual_seed(0)
    assert mixer.thresholds is None
    for epoch in range(3):
        train_epoch(mixer, epoch, g)
        assert mixer.thresholds == pytest.approx(THRESHOLDS[epoch]), epoch
        assert mixer.mixed.tolist() == MIXED[epoch], epoch


def test_the_rule_changes_only_the_thresholds() -> None:
    """Every decision is the region rule applied to the running thresholds, nothing else."""
    mixer = InputMixer("mixup", 8, 0.5)
    g = torch.Generator().manual_seed(1)
    prev, region3 = torch.full((8,), float("nan")), torch.zeros(8, dtype=torch.bool)
    for epoch in range(3):
        train_epoch(mixer, epoch, g)
        loss = torch.tensor(HISTORY[epoch][0])
        want_mixed, want_r3 = assign_regions(loss, prev, THRESHOLDS[epoch], region3)
        assert torch.equal(mixer.mixed, want_mixed) and torch.equal(mixer.region3, want_r3)
        assert torch.equal(mixer.loss, loss) and torch.equal(mixer.prev, loss)
        prev, region3 = loss, want_r3
    # After one epoch the running average is that epoch's mean: the old rule's decision.
    first = InputMixer("mixup", 8, 0.5)
    train_epoch(first, 0, torch.Generator().manual_seed(2))
    loss, correct = (torch.tensor(v) for v in HISTORY[0])
    assert first.thresholds == pytest.approx(epoch_means(loss, correct, torch.ones(8, dtype=bool)))
    # The history tells the rules apart: the last epoch alone (L_corr 1.7) would mix sample 6.
    last_only, _ = assign_regions(
        torch.tensor(HISTORY[1][0]),
        torch.tensor(HISTORY[0][0]),
        (1.7, 3.0),
        torch.zeros(8, dtype=bool),
    )
    assert last_only[6] and not torch.equal(last_only, torch.tensor(MIXED[1]))


def test_resume_from_the_state_dict_continues_the_running_thresholds() -> None:
    full = InputMixer("mixup", 8, 0.5)
    g = torch.Generator().manual_seed(3)
    for epoch in range(2):
        train_epoch(full, epoch, g)
    state = full.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    resumed = InputMixer("mixup", 8, 0.5)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    g_resumed = torch.Generator().set_state(g.get_state())
    train_epoch(full, 2, g)
    train_epoch(resumed, 2, g_resumed)
    assert resumed.thresholds == full.thresholds == pytest.approx(THRESHOLDS[2])
    assert torch.equal(resumed.mixed, full.mixed) and torch.equal(resumed.region3, full.region3)


def test_a_state_without_the_running_thresholds_is_refused() -> None:
    old = {k: v for k, v in InputMixer("mixup", 8, 0.5).state_dict().items() if k[:4] != "mean"}
    with pytest.raises(ValueError, match="mean_sum, mean_count"):
        InputMixer("mixup", 8, 0.5).load_state_dict(old)
