"""Checkpoint cadence for paper-scale runs: every k epochs or N minutes, the last epoch always."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.support import TINY_RUN
from trainers import TrialConfig, run
from trainers.config import ConfigError
from trainers.pipeline import checkpoint_due


def config(**changes) -> TrialConfig:
    return TrialConfig.from_dict(
        {**TINY_RUN, "epochs_ssl": 3, "epochs_sl": 3, "rho": 0.67, **changes}
    )


@pytest.mark.parametrize(
    ("every", "minutes", "epoch", "since_s", "due"),
    [
        (1, 0.0, 1, 0.0, True),
        (2, 0.0, 1, 1e9, False),  # minutes off: time alone never checkpoints
        (2, 0.0, 2, 0.0, True),
        (3, 0.0, 4, 0.0, True),  # the last epoch (4 of 4) always checkpoints
        (3, 10.0, 1, 599.0, False),
        (3, 10.0, 1, 600.0, True),
    ],
)
def test_checkpoint_due(every: int, minutes: float, epoch: int, since_s: float, due: bool) -> None:
    c = config(checkpoint_every=every, checkpoint_minutes=minutes)
    assert checkpoint_due(c, epoch, 4, since_s) is due


@pytest.mark.parametrize(("field", "value"), [("checkpoint_every", 0), ("checkpoint_minutes", -1)])
def test_bad_cadence_is_rejected_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        config(**{field: value})


def collect(
    c: TrialConfig, checkpoint: dict | None = None, recorded: int | None = None
) -> list[tuple[dict, dict | None]]:
    """Each epoch's (metrics, state); states copied as they are written (they alias the model)."""
    out: list[tuple[dict, dict | None]] = []
    report = lambda metrics, state: out.append((metrics, copy.deepcopy(state)))  # noqa: E731
    run(c, report, checkpoint, recorded=recorded)
    return out


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_every_second_epoch_checkpoints_and_resumes_exactly() -> None:
    c = config(checkpoint_every=2)  # ssl, mix, mix, sl
    full = collect(c)
    assert [state is not None for _, state in full] == [False, True, False, True]
    rest = collect(c, checkpoint=full[1][1])  # resume from the epoch-2 checkpoint
    assert [m["epoch"] for m, _ in rest] == [3, 4]
    for (a, _), (b, _) in zip(full[2:], rest, strict=True):
        for key in ("loss_ssl", "loss_sl", "val_accuracy", "train_gflops", "test_accuracy"):
            expected = a.get(key)
            assert b.get(key) == (pytest.approx(expected, rel=1e-6) if expected else expected), key
    for name, ref in full[-1][1]["model"].items():
        torch.testing.assert_close(rest[-1][1]["model"][name], ref, rtol=1e-6, atol=1e-7)
    # A caller whose record stops before the checkpoint (it kept epoch 1 of 2): epoch 2's row
    # again, as it was, with the state, then the epochs after it once.
    replayed = collect(c, checkpoint=full[1][1], recorded=1)
    assert [m["epoch"] for m, _ in replayed] == [2, 3, 4]
    assert replayed[0][0] == full[1][0] and replayed[0][1] is not None
    assert replayed[0][1]["epoch"] == 2
    assert [m["epoch"] for m, _ in collect(c, checkpoint=full[3][1], recorded=1)] == [2, 3, 4]
