"""analysis: Pareto, dominance, hypervolume and knee against brute force; analyze on synthetic
experiment folders (trials.parquet, and Ray's own files when it is missing)."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis import (
    analyze_experiment,
    dominates,
    hypervolume,
    hypervolume_2d,
    knee_index,
    load_experiment,
    pareto_mask,
    reference_point,
    to_minimize,
)
from analysis.hypervolume import hypervolume_slicing
from analysis.plots import front_steps, plot_axes, plot_data
from tests.support import (
    ANALYSIS_SPACE,
    FINISHED,
    FRONT_IDS,
    KNOBS,
    trial,
    write_experiment,
    write_ray_experiment,
)
from tune_app.cli import main

# ---------------------------------------------------------------- brute-force references


def brute_front(costs: np.ndarray) -> np.ndarray:
    """O(n^2) loops straight from the definition (lower is better)."""
    n = len(costs)
    out = np.ones(n, dtype=bool)
    for i, j in itertools.product(range(n), range(n)):
        if all(costs[j] <= costs[i]) and any(costs[j] < costs[i]):
            out[i] = False
    return out


def brute_hypervolume(costs: np.ndarray, ref: np.ndarray) -> float:
    """Exact union volume by coordinate compression: sum the grid cells some point dominates."""
    costs = costs[np.all(costs < ref, axis=1)]
    if len(costs) == 0:
        return 0.0
    axes = [np.unique(np.append(costs[:, k], ref[k])) for k in range(len(ref))]
    total = 0.0
    for cell in itertools.product(*(range(len(a) - 1) for a in axes)):
        low = np.array([a[i] for a, i in zip(axes, cell, strict=True)])
        if np.any(np.all(costs <= low, axis=1)):
            total += np.prod([a[i + 1] - a[i] for a, i in zip(axes, cell, strict=True)])
    return float(total)


def random_costs(rng: np.random.Generator, n: int, m: int, ties: bool) -> np.ndarray:
    # Small integers give many ties and exact duplicates; floats give general position.
    return rng.integers(0, 4, size=(n, m)).astype(float) if ties else rng.random((n, m))


# ---------------------------------------------------------------- Pareto and dominance


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("ties", [False, True])
def test_pareto_mask_matches_brute_force(m: int, ties: bool) -> None:
    rng = np.random.default_rng(m * 10 + ties)
    for _ in range(40):
        values = random_costs(rng, int(rng.integers(1, 30)), m, ties)
        goals = list(rng.choice(["maximize", "minimize"], size=m))
        expected = brute_front(to_minimize(values, goals))
        np.testing.assert_array_equal(pareto_mask(values, goals), expected)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.zeros((0, 2)), []),
        (np.array([[0.5, 3.0]]), [True]),
        (np.array([[1.0, 1.0], [1.0, 1.0]]), [True, True]),  # duplicates of a front point stay
        (np.array([[1.0, 1.0], [1.0, 2.0]]), [True, False]),  # a tie on one objective
        (np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0]]), [True, True, False]),
    ],
)
def test_pareto_mask_edge_cases(values: np.ndarray, expected: list[bool]) -> None:
    assert pareto_mask(values, ["minimize", "minimize"]).tolist() == expected


def test_dominates_matches_definition_and_goals_flip() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        a, b = random_costs(rng, 2, 3, ties=True)
        expected = all(x <= y for x, y in zip(a, b, strict=True)) and any(a != b)
        assert dominates(a, b) == expected
    acc_lat = np.array([[0.9, 10.0], [0.8, 12.0]])  # more accurate and faster
    costs = to_minimize(acc_lat, ["maximize", "minimize"])
    assert dominates(costs[0], costs[1]) and not dominates(costs[1], costs[0])
    assert not dominates(costs[0], costs[0])


# ---------------------------------------------------------------- hypervolume and knee


def test_hypervolume_closed_forms() -> None:
    ref = np.array([4.0, 5.0])
    assert hypervolume(np.array([[1.0, 2.0]]), ref) == pytest.approx(3 * 3)
    two = np.array([[1.0, 3.0], [2.0, 1.0]])  # two rectangles minus their overlap
    assert hypervolume(two, ref) == pytest.approx(3 * 2 + 2 * 4 - 2 * 2)
    assert hypervolume_2d(two, ref) == pytest.approx(10.0)
    assert hypervolume(np.array([[1.0, 1.0, 1.0]]), np.array([2.0, 3.0, 4.0])) == pytest.approx(6)
    assert hypervolume(np.zeros((0, 2)), ref) == 0.0
    assert hypervolume(np.array([[5.0, 1.0], [4.0, 0.0]]), ref) == 0.0  # outside: no volume
    assert hypervolume(np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 3.0]]), ref) == pytest.approx(9)


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("ties", [False, True])
def test_hypervolume_matches_exact_cell_count(m: int, ties: bool) -> None:
    rng = np.random.default_rng(100 + m * 10 + ties)
    for _ in range(15):
        costs = random_costs(rng, int(rng.integers(1, 9)), m, ties)
        ref = reference_point(costs)
        expected = brute_hypervolume(costs, ref)
        assert hypervolume(costs, ref) == pytest.approx(expected)
        assert hypervolume_slicing(costs, ref) == pytest.approx(expected)


def test_hypervolume_2d_matches_a_grid_estimate() -> None:
    rng = np.random.default_rng(7)
    costs, ref = rng.random((12, 2)), np.array([1.0, 1.0])
    grid = (np.arange(400) + 0.5) / 400  # cell centres of a 400 x 400 grid on [0, 1]^2
    gx, gy = np.meshgrid(grid, grid)
    cells = np.stack([gx.ravel(), gy.ravel()], axis=1)
    covered = (np.all(costs[None, :, :] <= cells[:, None, :], axis=2)).any(axis=1).mean()
    assert hypervolume_2d(costs, ref) == pytest.approx(covered, abs=0.01)
    assert hypervolume(costs, ref) == pytest.approx(hypervolume_2d(costs, ref))


def test_reference_point_pushes_the_worst_out_by_a_tenth_of_the_range() -> None:
    costs = np.array([[-0.9, 10.0], [-0.7, 30.0]])
    np.testing.assert_allclose(reference_point(costs), [-0.68, 32.0])
    np.testing.assert_allclose(reference_point(np.array([[2.0, 0.0]])), [2.2, 0.1])


def brute_knee(costs: np.ndarray) -> int:
    """Farthest from the line through the normalised extremes, by the textbook formula."""
    norm = (costs - costs.min(0)) / np.ptp(costs, axis=0)
    (x1, y1), (x2, y2) = norm[norm[:, 0].argmin()], norm[norm[:, 0].argmax()]
    dist = [abs((y2 - y1) * x - (x2 - x1) * y + x2 * y1 - y2 * x1) for x, y in norm]
    return int(np.argmax(dist))


def test_knee_index_matches_the_textbook_distance_and_handles_edge_cases() -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        x = np.sort(rng.random(int(rng.integers(3, 12))))
        costs = np.stack([x, 1 - x ** rng.uniform(0.2, 5)], axis=1)  # convex or concave fronts
        assert knee_index(costs) == brute_knee(costs)
    assert knee_index(np.array([[0.0, 1.0], [0.1, 0.2], [1.0, 0.0]])) == 1
    assert knee_index(np.array([[3.0, 4.0]])) == 0
    assert knee_index(np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])) == 0
    line = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    assert knee_index(line) == 1  # a straight front: nearest the normalised ideal point
    two = np.array([[-0.14, 2.8], [-0.10, 2.5]])  # two points tie on their own range ...
    assert knee_index(two) == 0
    bounds = (np.array([-0.14, 2.4]), np.array([-0.10, 5.7]))  # ... not on all trials' range
    assert knee_index(two, bounds) == 0 and knee_index(two[::-1], bounds) == 1
    three = np.array([[0.0, 1.0, 1.0], [0.4, 0.4, 0.4], [1.0, 0.0, 1.0]])
    assert knee_index(three) == 1  # 3 objectives: nearest the normalised ideal point


def test_front_steps_and_axes() -> None:
    xs, ys = front_steps([14.0, 8.0, 10.0, 14.0], [0.85, 0.70, 0.80, 0.85], "minimize")
    assert list(zip(xs, ys, strict=True)) == [
        (8.0, 0.70),
        (10.0, 0.70),
        (10.0, 0.80),
        (14.0, 0.80),
        (14.0, 0.85),
    ]
    assert front_steps([], [], "minimize") == ([], [])
    acc, lat = ("val_accuracy", "maximize"), ("train_latency_s", "minimize")
    assert plot_axes(["val_accuracy", "train_latency_s"], ["maximize", "minimize"]) == (lat, acc)
    assert plot_axes(["train_latency_s", "val_accuracy"], ["minimize", "maximize"]) == (lat, acc)
    assert plot_axes(["val_accuracy"], ["maximize"]) == (lat, acc)


# ---------------------------------------------------------------- synthetic experiment folders


@pytest.fixture
def finished(tmp_path: Path) -> Path:
    return write_experiment(tmp_path / "finished", FINISHED)


def test_analysis_of_a_finished_experiment(finished: Path) -> None:
    a = analyze_experiment(load_experiment(finished))
    assert a.front["trial_id"].tolist() == FRONT_IDS
    # No configuration ran a second seed: the choice is over single runs, as it always was.
    assert a.basis == "single runs"
    assert a.front_configs["trial_ids"].tolist() == [[t] for t in FRONT_IDS]
    assert a.knee_config["trial_ids"] == ["m1"]  # farthest from the line m3-m6 once normalised
    assert sorted(a.left_out["trial_id"]) == ["e1", "u1"]
    assert dict(zip(a.left_out["trial_id"], a.left_out["reason"], strict=True)) == {
        "e1": "errored",
        "u1": "unfinished",
    }
    stats = a.baselines["ssl_sl"]
    assert stats["val_accuracy"]["mean"] == pytest.approx(0.83)
    assert stats["train_latency_s"]["std"] == pytest.approx(np.std([21.0, 19.0], ddof=1))
    assert stats["val_accuracy"]["n"] == 2
    winners = a.mix[a.mix["dominates_ssl_sl"]]["trial_id"]
    assert sorted(winners) == ["m2", "m3", "m5"]
    assert not a.mix["dominates_sl"].any()
    m2 = a.mix.set_index("trial_id").loc["m2"]
    assert m2["train_latency_s_vs_ssl_sl"] == pytest.approx(-6.0)
    np.testing.assert_allclose(a.reference, [0.68, 22.3])  # worst over complete trials + 10%
    assert a.hypervolume["mixtraining"] == pytest.approx(
        0.02 * 14.3 + 0.10 * 12.3 + 0.05 * 8.3 + 0.05 * 2.3
    )
    assert a.hypervolume["baselines"] == pytest.approx(0.05 * 13.05 + 0.10 * 2.3)
    assert a.hypervolume["ssl_sl"] == pytest.approx(0.15 * 2.3)
    # 2 + 2 epochs: rho 0.1 and 0.3 give floor(rho * 2) = 0 MIX epochs (trained as SSL+SL).
    assert sorted(a.mix.loc[a.mix["no_mix_epoch"], "trial_id"]) == ["m1", "m6"]


def test_plot_data_of_a_finished_experiment(finished: Path) -> None:
    data = plot_data(analyze_experiment(load_experiment(finished)))
    assert (data.x_label, data.y_label) == ("training latency (s)", "validation accuracy")
    groups = {g.label: g for g in data.points}
    assert groups["MixTraining, dominated"].ids == ["m4"]
    assert groups["MixTraining Pareto front"].ids == FRONT_IDS
    assert sorted(groups["SSL+SL seeds"].ids) == ["s0", "s1"]
    assert "alpha = 0.8" in groups["MixTraining, dominated"].hover[0]
    assert data.front_line[0][:3] == [8.0, 10.0, 10.0]
    assert data.front_line[1][:3] == [0.70, 0.70, 0.80]
    ssl = next(b for b in data.baselines if b.label.startswith("SSL+SL"))
    assert (ssl.x, ssl.y) == pytest.approx((20.0, 0.83))
    assert ssl.x_err == pytest.approx(np.sqrt(2)) and ssl.y_err == pytest.approx(np.sqrt(2) / 100)
    assert data.knee.ids == ["m1"]
    assert "1 errored" in data.note and "1 unfinished" in data.note


def check_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_analyze_writes_every_file(finished: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["analyze", str(finished)]) == 0
    out = finished / "analysis"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["pareto.parquet", "summary.json", "pareto.png", "pareto.html", "report.md"]
        + ["importance.png", "parallel_coordinates.png", "slices.png", "hypervolume_history.png"]
    )
    headline = capsys.readouterr().out
    # Every configuration has one seed: no claim reaches the headline, they are counted instead.
    assert "0 of 0 confirmed configurations dominate SSL+SL at p < 0.05" in headline
    assert "6 unconfirmed (single-seed) configurations make no claim (3 of them" in headline
    assert "1 errored, 1 unfinished" in headline
    assert "2 of the 6 MixTraining trials had no MIX epoch" in headline
    # Confirmation off: the choice is today's (single runs), and the headline warns of it.
    assert "Pareto front: 5 single run(s); knee trial m1" in headline
    assert "Single runs: no configuration of this experiment ran a second seed" in headline
    front = pd.read_parquet(out / "pareto.parquet")
    assert front["trial_id"].tolist() == FRONT_IDS and front["trial_id"].is_unique
    assert front.loc[front["knee"], "trial_id"].tolist() == ["m1"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["left_out"] == {"errored": 1, "unfinished": 1}
    assert summary["counts"]["mixtraining_without_mix_epoch"] == 2
    assert summary["dominance"]["ssl_sl"]["dominated_by"] == ["m2", "m5", "m3"]
    # m3 only ties SSL+SL's latency; m2 and m5 also clear the seed std on both objectives.
    assert summary["dominance"]["ssl_sl"]["better_on_every_objective"] == ["m2", "m5"]
    assert summary["dominance"]["ssl_sl"]["margins_beyond_seed_std"] == ["m2", "m5"]
    assert summary["hypervolume"]["reference_point"] == pytest.approx(
        {"val_accuracy": 0.68, "train_latency_s": 22.3}
    )
    assert summary["choice_basis"] == "single runs"
    assert summary["knee"]["trial_ids"] == ["m1"] and "normalise" in summary["knee"]["rule"]
    assert summary["knee"]["n"] == 1 and summary["knee"]["val_accuracy_std"] is None
    assert {"e1", "u1"} == {t["trial_id"] for t in summary["left_out"]}
    assert "RuntimeError: loss is nan" in json.dumps(summary["left_out"])
    report = (out / "report.md").read_text()
    for needle in ("## Pareto front", "| m1 |", "SSL+SL", "seed std", "Reference point", "u1"):
        assert needle in report
    assert "`rho` was drawn as one value per e_mix = floor(rho * 2) step" in report
    check_png(out / "pareto.png")
    check_html(out / "pareto.html", [r["trial_id"] for r in FINISHED if r["complete"]])


def check_html(path: Path, ids: list[str]) -> None:
    html = path.read_text()
    assert not re.search(r"<script[^>]*src=[\"']?https?:", html)  # plotly.js inlined: offline
    assert "Plotly.newPlot" in html
    for tid in ids:
        assert f"trial {tid} (" in html


CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


@pytest.mark.timeout(300)  # over the default limit on two busy cores
@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian package `chromium`) installed")
def test_html_renders_a_plot_in_headless_chromium(finished: Path, tmp_path: Path) -> None:
    assert main(["analyze", str(finished)]) == 0
    html = finished / "analysis" / "pareto.html"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip
    run = subprocess.run(
        [CHROMIUM, *flags, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         html.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert 'class="main-svg"' in run.stdout  # plotly drew its SVG
    markers = re.findall(r'class="point[ "]', run.stdout)
    assert len(markers) >= len(FRONT_IDS)  # markers were drawn
    assert "net::ERR" not in run.stderr  # nothing fetched from the network
    # the trade-off plot and the four tuner figures, parallel coordinates among them
    assert run.stdout.count('class="plotly-graph-div js-plotly-plot"') == 5
    assert 'class="parcoords"' in run.stdout


def plotly_figures(html: str) -> dict[str, tuple[list[dict], dict]]:
    """div id -> (traces, layout) of every `Plotly.newPlot(id, data, layout, ...)` in a page."""
    decoder, comma = json.JSONDecoder(), re.compile(r"\s*,\s*")
    out = {}
    for call in re.finditer(r"Plotly\.newPlot\(\s*", html):
        div, end = decoder.raw_decode(html, call.end())
        traces, end = decoder.raw_decode(html, comma.match(html, end).end())
        layout, _ = decoder.raw_decode(html, comma.match(html, end).end())
        out[div] = (traces, layout)
    return out


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_pareto_html_holds_the_tuner_figures(finished: Path) -> None:
    assert main(["analyze", str(finished)]) == 0
    out = finished / "analysis"
    figures = plotly_figures((out / "pareto.html").read_text())
    assert list(figures)[1:] == ["tuner-importance", "tuner-parallel", "tuner-slices",
                                 "tuner-history"]  # fmt: skip
    bars, layout = figures["tuner-importance"]
    assert {t["type"] for t in bars} == {"bar"} and len(bars) == 4  # 2 evaluators x 2 objectives
    assert {t["name"] for t in bars} == {"fANOVA", "PED-ANOVA"}
    assert all(t["y"] == list(KNOBS) for t in bars)
    assert "Only 6 complete MixTraining trials" in layout["title"]["text"]  # too few: said so
    (parallel,), _ = figures["tuner-parallel"]
    assert parallel["type"] == "parcoords"
    labels = [d["label"] for d in parallel["dimensions"]]
    assert labels == [*KNOBS, "validation accuracy", "training latency (s)"]
    accuracy = parallel["dimensions"][4]["values"]
    colour = dict(zip(accuracy, parallel["line"]["color"], strict=True))
    assert colour[0.78] == 0 and colour[0.90] == 1  # m4 dominated, m3 on the front
    slices, _ = figures["tuner-slices"]
    assert {t["type"] for t in slices} == {"scatter"}
    assert len(slices) == 2 * len(KNOBS) * 2  # front + dominated per (knob, objective)
    assert sum(len(t["x"]) for t in slices) == 6 * len(KNOBS) * 2
    (history,), _ = figures["tuner-history"]
    summary = json.loads((out / "summary.json").read_text())
    assert history["y"][-1] == pytest.approx(summary["hypervolume"]["mixtraining"])
    assert [h["hypervolume"] for h in summary["hypervolume_history"]] == history["y"]
    assert set(summary["importance"]) == {"val_accuracy", "train_latency_s"}
    assert set(summary["importance"]["val_accuracy"]) == set(KNOBS)
    assert summary["importance_detail"]["trials"] == 6
    report = (out / "report.md").read_text()
    assert "## What drives each objective" in report and "| 1 | `" in report
    assert "Only 6 complete MixTraining trials" in report


# ---------------------------------------------------------------- Ray files only (no parquet)


@pytest.mark.timeout(300)  # over the default limit on two busy cores
@pytest.mark.parametrize("with_state", [True, False])
def test_partial_experiment_from_ray_files(tmp_path: Path, with_state: bool, capsys) -> None:
    exp = write_ray_experiment(tmp_path / "partial", with_state)
    loaded = load_experiment(exp)
    assert loaded.source.startswith("Ray result files")
    table = loaded.table.set_index("trial_id")
    assert table.loc["r3", "status"] == "ERROR" and "Boom" in table.loc["r3", "error"]
    assert table.loc["r2", "epochs_done"] == 2  # the torn last line is skipped
    assert table.loc["r6", "status"] == ("PENDING" if with_state else "UNKNOWN")
    # r1 reported every planned epoch: complete even though Ray still said RUNNING.
    assert table["complete"].to_dict() == {
        "r1": True, "r2": False, "r3": False, "r4": True, "r5": True, "r6": False,
    }  # fmt: skip
    assert table.loc["r1", "anneal"] == "cosine" and table.loc["r1", "dataset"] == "digits"
    assert pd.isna(table.loc["r4", "alpha"])  # knobs mean nothing for a baseline
    assert main(["analyze", str(exp)]) == 0
    summary = json.loads((exp / "analysis" / "summary.json").read_text())
    assert summary["counts"]["left_out"] == {"errored": 1, "unfinished": 2}
    assert summary["source"].startswith("Ray result files")
    assert summary["counts"]["mixtraining_without_mix_epoch"] == 1  # r1: floor(0.4 * 2) = 0
    assert [t["trial_ids"] for t in summary["front"]] == [["r1"]]
    assert summary["dominance"]["ssl_sl"]["dominated_by"] == ["r1"]
    assert "Ray result files" in (exp / "analysis" / "report.md").read_text()


def test_failed_only_experiment_still_writes_a_report(tmp_path: Path, capsys) -> None:
    rows = [trial(f"e{i}", None, None, status="ERROR", done=0, error="OOM") for i in range(3)]
    exp = write_experiment(tmp_path / "failed", rows)
    assert main(["analyze", str(exp)]) == 1  # documented: no MixTraining front -> 1
    captured = capsys.readouterr()
    assert "No complete MixTraining trial" in captured.out and "3 errored" in captured.out
    summary = json.loads((exp / "analysis" / "summary.json").read_text())
    assert summary["counts"]["complete"] == 0 and summary["front"] == []
    assert summary["knee"] is None and summary["hypervolume"]["reference_point"] is None
    assert "no front" in (exp / "analysis" / "report.md").read_text()
    check_png(exp / "analysis" / "pareto.png")


def test_empty_experiment_from_ray_files(tmp_path: Path, capsys) -> None:
    exp = write_experiment(tmp_path / "empty", [])  # space.yaml only: nothing started yet
    assert main(["analyze", str(exp)]) == 1
    assert json.loads((exp / "analysis" / "summary.json").read_text())["counts"]["trials"] == 0


@pytest.mark.parametrize("kind", ["missing", "no_space", "bad_table"])
def test_not_an_experiment_exits_2_and_writes_nothing(tmp_path: Path, kind: str, capsys) -> None:
    exp = tmp_path / "exp"
    if kind != "missing":
        exp.mkdir()
    if kind == "bad_table":
        (exp / "space.yaml").write_text(yaml.safe_dump(ANALYSIS_SPACE))
        pd.DataFrame({"trial_id": ["x"]}).to_parquet(exp / "trials.parquet")
    assert main(["analyze", str(exp)]) == 2
    assert str(exp) in capsys.readouterr().err
    assert not (exp / "analysis").exists()


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_a_crash_while_rendering_leaves_no_half_written_files(finished: Path, monkeypatch) -> None:
    assert main(["analyze", str(finished)]) == 0
    before = {p.name: p.read_bytes() for p in (finished / "analysis").iterdir()}

    def broken(*_: object) -> None:
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr("analysis.write.draw_html", broken)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        main(["analyze", str(finished)])
    after = {p.name: p.read_bytes() for p in (finished / "analysis").iterdir()}
    assert after == before  # the old files, untouched; no temporaries left behind


def test_analyze_out_writes_elsewhere(finished: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "elsewhere"
    assert main(["analyze", str(finished), "--out", str(out)]) == 0
    assert (out / "report.md").exists() and not (finished / "analysis").exists()
    (tmp_path / "a_file").write_text("")
    assert main(["analyze", str(finished), "--out", str(tmp_path / "a_file")]) == 2
