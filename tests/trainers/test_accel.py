"""mixTrain input mixing: composites, split propagation, selective-mixing regions, batch counts."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from tests.support import collect
from trainers import TrialConfig
from trainers.accel import (
    R_MIN,
    InputMixer,
    adaptive_ratio,
    assign_regions,
    box_cells,
    cells_to_pixels,
    cutmix_box,
    pair_items,
)
from trainers.models import create_model
from trainers.steps import Batch, BatchSource, composite_loss, mixed_batches

NAN = float("nan")


@pytest.mark.parametrize(
    ("grid", "share"), [((4, 4), 0.5), ((7, 7), 0.25), ((8, 8), 0.5), ((2, 2), 0.9), ((7, 7), 0.05)]
)
def test_cutmix_box_cells_and_area_share(grid: tuple[int, int], share: float) -> None:
    g = torch.Generator().manual_seed(0)
    corner, size = cutmix_box(grid, share, 50, g)
    h, w = int(size[0]), int(size[1])
    assert 1 <= h < grid[0] and 1 <= w < grid[1]  # both constituents keep a cell
    assert h == min(max(1, round(math.sqrt(share) * grid[0])), grid[0] - 1)
    cells = box_cells(corner, size, grid)
    assert (cells.sum(1) == h * w).all()
    for n in range(5):  # brute force: the box is the rectangle at the corner
        ref = torch.zeros(grid, dtype=torch.bool)
        r0, c0 = corner[n].tolist()
        ref[r0 : r0 + h, c0 : c0 + w] = True
        assert torch.equal(cells[n], ref.flatten())
    image = grid[0] * 4  # 4 px per cell: the pixel share is the cell share exactly
    pixels = cells_to_pixels(cells, grid, image)
    assert torch.allclose(pixels.float().mean(dim=(1, 2, 3)), cells.float().mean(1))


def test_cells_to_pixels_clips_a_partial_last_cell() -> None:
    cells = torch.zeros(1, 16, dtype=torch.bool)
    cells[0, 15] = True  # bottom-right cell of a 4x4 grid over 28 px: rows/cols 21..27
    pixels = cells_to_pixels(cells, (4, 4), 28)[0, 0]
    assert pixels.sum() == 49 and pixels[21:, 21:].all()


def test_split_propagation_scores_each_region_with_its_own_label_in_one_pass() -> None:
    torch.manual_seed(0)
    model = create_model("vit_micro", num_classes=10, image_size=16, in_chans=1)
    grid = model.feature_grid
    g = torch.Generator().manual_seed(1)
    corner, size = cutmix_box(grid, 0.5, 4, g)
    cells = box_cells(corner, size, grid)
    x = torch.randn(4, 1, 16, 16, generator=g)
    y_a, y_b = torch.tensor([1, 2, 3, 4]), torch.tensor([5, 6, 7, 8])
    r = cells.float().mean(1)
    from trainers.accel import MixItems

    batch = Batch(x, y_a, MixItems(torch.arange(4), torch.arange(4, 8), r, cells), y_b, "cutmix")
    calls = []
    model.blocks[0].register_forward_hook(lambda m, i, o: calls.append(1))
    out = composite_loss(model, batch)
    assert len(calls) == 1  # the trunk ran once for the whole batch of composites
    tokens = model.encode(x, 0.0)[0][:, 1:]
    for n in range(4):
        la = F.cross_entropy(model.head(tokens[n][cells[n]].mean(0))[None], y_a[n : n + 1])
        lb = F.cross_entropy(model.head(tokens[n][~cells[n]].mean(0))[None], y_b[n : n + 1])
        assert out["item_loss_a"][n] == pytest.approx(la.item(), rel=1e-5)
        assert out["item_loss_b"][n] == pytest.approx(lb.item(), rel=1e-5)
    expected = (r * out["item_loss_a"] + (1 - r) * out["item_loss_b"]).mean()
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_unmixed_items_reduce_to_plain_cross_entropy() -> None:
    torch.manual_seed(0)
    model = create_model("resnet_micro", num_classes=10, image_size=16, in_chans=1)
    x, y = torch.randn(3, 1, 16, 16), torch.tensor([0, 1, 2])
    from trainers.accel import MixItems

    idx = torch.arange(3)
    full = torch.ones(3, math.prod(model.feature_grid), dtype=torch.bool)
    for mode, cells in (("mixup", None), ("cutmix", full)):
        batch = Batch(x, y, MixItems(idx, idx, torch.ones(3), cells), y, mode)
        expected = F.cross_entropy(model.sl_logits(x), y)
        assert composite_loss(model, batch)["loss"].item() == pytest.approx(expected.item(), 1e-5)


@pytest.mark.parametrize(
    ("loss", "prev", "r3_last", "mixed", "region3"),
    [
        # L_corr 0.2, L_incorr 2.0 -> L_mid 1.1
        (
            [0.5, 1.5, 2.5, 2.5, 2.5, NAN],
            [0.4, 1.0, 2.0, 3.0, 2.0, NAN],
            [False, False, False, False, True, False],
            [True, False, True, False, False, False],  # r1; r2; r3 rising; r3 falling; r3 again
            [False, False, True, False, False, False],
        ),
        (
            [1.1, 2.0, 2.01],
            [NAN, NAN, 1.0],
            [False] * 3,
            [False, False, True],
            [False, False, True],
        ),  # boundaries: L_mid and L_incorr excluded
    ],
)
def test_region_rules_on_hand_made_tables(loss, prev, r3_last, mixed, region3) -> None:
    got_mixed, got_r3 = assign_regions(
        torch.tensor(loss), torch.tensor(prev), (0.2, 2.0), torch.tensor(r3_last)
    )
    assert got_mixed.tolist() == mixed and got_r3.tolist() == region3


def test_nothing_is_mixed_before_the_thresholds_exist() -> None:
    mixer = InputMixer("mixup", 6, 0.5)
    assert mixer.mixed_fraction == 0.0  # the first epoch: no losses yet
    a, b, r = mixer.epoch_items(torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and (r == 1).all() and len(a) == 6
    mixer.record(a, b, torch.ones(6), torch.ones(6), torch.ones(6, dtype=torch.bool))
    mixer.end_epoch()  # every unmixed sample correct: L_incorr does not exist
    assert mixer.mixed_fraction == 0.0 and mixer.thresholds is None


@pytest.mark.parametrize(
    ("n", "m", "batch"), [(100, 40, 16), (100, 0, 16), (64, 64, 8), (37, 11, 5), (10, 1, 3)]
)
def test_epoch_with_mixed_set_m_has_the_expected_batches(n: int, m: int, batch: int) -> None:
    mixed = torch.zeros(n, dtype=torch.bool)
    mixed[torch.randperm(n, generator=torch.Generator().manual_seed(n))[:m]] = True
    a, b = pair_items(mixed, torch.Generator().manual_seed(1))
    assert len(a) == n - m // 2
    # every sample appears exactly once; pairs only join mixed samples
    assert sorted(torch.cat([a, b[a != b]]).tolist()) == list(range(n))
    assert mixed[a[a != b]].all() and mixed[b[a != b]].all()
    # The SL epoch the pipeline runs: ceil((n - m // 2) / batch) steps, none over the batch size,
    # together holding every item once (no drop-last for mixed epochs).
    mixer = InputMixer("mixup", n, 0.5)
    mixer.mixed = mixed
    splits = SimpleNamespace(
        train_x=torch.zeros(n, 1, 8, 8, dtype=torch.uint8),
        train_y=torch.arange(n),
        ssl_x=None,
        image_size=8,
        mean=(0.5,),
        std=(0.25,),
    )
    source = BatchSource(splits, batch, torch.Generator().manual_seed(2))
    sizes = [len(x.items.a) for x in mixed_batches(source, mixer, (2, 2))]
    assert len(sizes) == math.ceil((n - m // 2) / batch) and max(sizes) <= batch
    assert sum(sizes) == n - m // 2


def test_adaptive_ratio_favours_the_harder_input_and_is_bounded() -> None:
    la, lb = torch.tensor([3.0, 1.0, 1.0, 100.0, 0.0]), torch.tensor([1.0, 3.0, 1.0, 0.01, 0.0])
    r = adaptive_ratio(la, lb, default=0.5)
    assert r[0] == pytest.approx(0.75) and r[1] == pytest.approx(0.25) and r[2] == 0.5
    assert r[3] == pytest.approx(1 - R_MIN) and r[4] == 0.5  # bounded; undefined -> default


def sl_run(accel: str, seed: int) -> TrialConfig:
    """An SL-only run on digits with input mixing in its 4 epochs."""
    return TrialConfig.from_dict(
        {
            "model": "vit_micro",
            "dataset": "digits",
            "labeled_fraction": 0.5,
            "pipeline": "sl",
            "epochs_sl": 4,
            "batch_size": 64,
            "num_threads": 1,
            "sl_accel": accel,
            "seed": seed,
            "lr_sl": 5e-3,
        }
    )


@pytest.mark.timeout(300)  # over the default limit on two busy cores
@pytest.mark.parametrize("accel", ["mixup", "cutmix", "skip"])
def test_sl_phase_with_input_mixing_runs_and_reports_the_mixed_fraction(accel: str) -> None:
    from trainers import run

    config = sl_run(accel, seed=0)
    rows = []
    run(config, lambda m, s: rows.append(m))
    fractions = [r["mixed_fraction"] for r in rows]
    assert all(0.0 <= f <= 1.0 for f in fractions) and fractions[0] == 0.0
    if accel == "skip":
        assert max(fractions) == 0.0  # the skipping baseline mixes nothing
    else:
        assert max(fractions) > 0.0  # once the losses exist, some samples get mixed
    assert all(math.isfinite(r["loss_sl"]) for r in rows)


@pytest.mark.timeout(300)  # over the default limit on two busy cores
@pytest.mark.parametrize("accel", ["mixup", "cutmix"])
def test_resume_with_input_mixing_matches_the_uninterrupted_run(accel: str) -> None:
    config = sl_run(accel, seed=1)
    full_rows, full_states, _ = collect(config)
    _, part_states, _ = collect(config, stop_after=2)
    rest_rows, rest_states, _ = collect(config, checkpoint=part_states[-1])
    assert [r["mixed_fraction"] for r in rest_rows] == [r["mixed_fraction"] for r in full_rows[2:]]
    for name, ref in full_states[-1]["model"].items():
        torch.testing.assert_close(rest_states[-1]["model"][name], ref, rtol=1e-6, atol=1e-7)
