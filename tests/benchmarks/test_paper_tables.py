"""benchmarks/paper_tables.py: the cell list, the trend reading, rendering, resume, a tiny run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import paper_tables as pt

ALL = list(pt.TABLE_NUMBERS)


def fake_doc(runs: dict[str, list[float]], planned: list[str] | None = None) -> dict[str, Any]:
    """A results document with the given test accuracies per cell (seeds 0, 1, ...)."""
    out = {
        f"{key}/{seed}": {
            "cell": key,
            "seed": seed,
            "test_accuracy": acc,
            "val_accuracy": acc,
            "train_gflops": 10.0,
            "step_counts": {"sl": 4},
            "cpu_s": 1.0,
        }
        for key, accs in runs.items()
        for seed, acc in enumerate(accs)
    }
    return {"settings": {}, "meta": {"planned": planned or list(out)}, "runs": out}


def test_plan_is_seed_major_and_covers_every_table_cell() -> None:
    todo = pt.plan(ALL, [0, 1, 2])
    keys = [k for k, s in todo if s == 0]
    assert len(keys) == len(set(keys)) == len(pt.CELLS)  # every cell used, once per seed
    assert todo == [(k, s) for s in (0, 1, 2) for k in keys]
    for table in pt.TABLES:
        for key in [k for _, k in table.rows] + [k for c in table.checks for k in c]:
            assert key in pt.CELLS, (table.number, key)
    assert {k for k, _ in pt.plan([6], [0])} == {
        "ssl_sl",
        "mix_rho0.25",
        "mix",
        "mix_rho0.75",
        "mix_rho1",
    }


def test_each_cell_changes_only_its_own_settings() -> None:
    base = pt.base_settings({})
    ref = pt.cell_config(base, "mix", 0).to_dict()
    assert ref["num_threads"] == 1 and ref["epochs_ssl"] == ref["epochs_sl"] == 4  # vit_mix
    for key, cell in pt.CELLS.items():
        config = pt.cell_config(base, key, 0).to_dict()
        changed = {k for k in ref if config[k] != ref[k]}
        expected = {k for k, v in cell.settings if ref[k] != v}
        expected |= {"pipeline"} if cell.pipeline != "mixtraining" else set()
        assert changed == expected, key
    assert pt.cell_config(base, "ssl_sl_noise", 2).label_noise == pt.NOISE


def test_reading_says_which_way_and_whether_seeds_support_it() -> None:
    doc = fake_doc(
        {
            "mix_linear": [0.80, 0.81, 0.82],
            "mix": [0.70, 0.71, 0.72],
            "mix_cosine": [0.70, 0.73, 0.71],
            "ssl_sl": [0.75],
        }
    )
    readings = pt.read_checks(doc, [t for t in pt.TABLES if t.number == 11])
    assert readings[("mix_linear", "mix")].startswith("higher by +10.00 points")
    assert readings[("mix_linear", "mix")].endswith(": significant)")
    assert readings[("mix_cosine", "mix")].endswith("not significant)")
    assert readings[("mix", "ssl_sl")] == "too few seeds to test"


def test_holm_counts_every_check_on_the_page() -> None:
    # p of a moderate difference alone vs among many checks: the correction must raise it.
    runs = {"mix_linear": [0.74, 0.76, 0.78], "mix": [0.70, 0.72, 0.74]}
    alone = pt.read_checks(fake_doc(runs), [pt.TABLES[-1]])[("mix_linear", "mix")]
    runs |= {k: [0.7, 0.71, 0.72] for k in pt.CELLS if k not in runs}
    many = pt.read_checks(fake_doc(runs), list(pt.TABLES))[("mix_linear", "mix")]
    holm = [float(s.split("Holm ")[1].split(":")[0]) for s in (alone, many)]
    assert holm[1] > holm[0]


def test_render_marks_partial_runs() -> None:
    planned = [f"{k}/{s}" for k, s in pt.plan(ALL, [0, 1, 2])]
    doc = fake_doc({"mix": [0.7, 0.71], "ssl_sl": [0.69, 0.7]}, planned)
    text = pt.render(doc, ALL)
    assert f"PARTIAL: 4 of {len(planned)} runs finished" in text
    assert "| rho 1 | 0 | not run |" in text
    assert "| alpha 0.5 | 2 | 70.50 ± 0.71 |" in text
    # the paper's side of an effect is there even where ours is not run yet
    assert "| rho 1 vs rho 0 | -0.36 | not run | not run | not run |" in text
    complete = pt.render(fake_doc({"mix": [0.7, 0.71]}), [11])
    assert "Complete: 2 runs." in complete and "PARTIAL" not in complete
    assert "No runs yet." in pt.render({"settings": {}, "meta": {}, "runs": {}}, ALL)


def test_paper_values_are_whole_and_every_effect_names_rows_and_cells_that_exist() -> None:
    assert set(pt.PAPER_NUMBERS) == set(pt.TABLE_NUMBERS)
    for number, paper in pt.PAPER_NUMBERS.items():
        assert paper is not None and paper.effects, number
        assert f"Table {number}" in paper.source
        labels = [label for label, _ in paper.rows]
        assert len(labels) == len(set(labels)), number
        for label, vals in paper.rows:
            assert len(vals) == len(paper.columns), (number, label)
            assert all(0 < v < 100 for v in vals), (number, label)
        for effect in paper.effects:
            assert set(effect.paper) <= set(labels), (number, effect.label)
            assert set(effect.ours) <= set(pt.CELLS), (number, effect.label)


def test_render_sets_the_paper_values_and_effects_beside_ours() -> None:
    doc = fake_doc(
        {
            "mix": [0.70, 0.71, 0.72],
            "ssl_sl_mixup": [0.60, 0.61, 0.62],  # MixTraining far above: as in the paper
            "ssl_sl": [0.70, 0.71, 0.72],  # mixup far below plain SSL+SL: the paper's opposite
            "sl_mixup": [0.50, 0.80, 0.65],  # too noisy to resolve against MixTraining
            "sl": [0.60, 0.61, 0.62],  # not a check: mean difference only
        }
    )
    text = pt.render(doc, [10])
    assert "The paper's Table 10 and its effects follow the checks." in text
    assert "not available here" not in text
    assert "Li et al., Table 10: ViT-T on CIFAR-10" in text
    assert "| paper's setting | CIFAR-10, 10% of the data | CIFAR-10, full data |" in text
    assert "| SSL+SL + mixup | 57.92 | 85.81 |" in text
    rows = {line.split(" | ")[0][2:]: line for line in text.splitlines() if " vs " in line}
    same = rows["MixTraining vs SSL+SL + mixup"]
    assert same.startswith("| MixTraining vs SSL+SL + mixup | +2.53 | +10.00 | p = ")
    assert same.endswith(": significant | same direction |")
    opposite = rows["SSL+SL + mixup vs SSL+SL"]
    assert "| +1.13 | -10.00 |" in opposite and opposite.endswith("| opposite direction |")
    noisy = rows["MixTraining vs SL + mixup"]
    assert noisy.endswith(": not significant | not resolved; mean the same way |")
    untested = rows["SL + mixup vs SL"]
    assert untested == (
        "| SL + mixup vs SL | +3.05 | +4.00 | not a check: means only "
        "| untested; mean the same way |"
    )


def test_a_table_without_paper_values_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(pt.PAPER_NUMBERS, 11, None)
    text = pt.render(fake_doc({"mix": [0.7, 0.71], "mix_linear": [0.72, 0.73]}), [10, 11])
    table11 = text.split("### Table 11", 1)[1]
    assert "The paper's Table 11: not available here." in table11
    assert "paper's setting" not in table11 and "effects in points" not in table11
    assert "| SSL+SL + mixup | 57.92 | 85.81 |" in text.split("### Table 11", 1)[0]


def test_rewrite_keeps_the_hand_written_notes(tmp_path: Path) -> None:
    page = tmp_path / "paper.md"
    assert pt.kept_notes(page) == f"{pt.NOTES_BEGIN}\n{pt.NOTES_END}"
    notes = f"{pt.NOTES_BEGIN}\nWhat the tables say.\n{pt.NOTES_END}"
    page.write_text("old header\n\n" + notes + "\n\nold tables\n")
    text = pt.render(fake_doc({"mix": [0.7]}), [11], pt.kept_notes(page))
    assert "What the tables say." in text and "old" not in text


def test_rerun_skips_finished_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trained: list[tuple[str, int]] = []

    def fake_train(config: Any) -> dict[str, Any]:
        trained.append((config.pipeline, config.seed))
        run = fake_doc({"x": [0.5]})["runs"]["x/0"]
        return {k: v for k, v in run.items() if k not in ("cell", "seed")}

    monkeypatch.setattr(pt, "train", fake_train)
    results = tmp_path / "r.json"
    args = ["--results", str(results), "--tables", "9", "--seeds", "0", "1"]
    assert pt.main(args) == 0
    assert len(trained) == 6
    doc = json.loads(results.read_text())
    assert sorted(doc["runs"]) == sorted(f"{k}/{s}" for k, s in pt.plan([9], [0, 1]))
    assert pt.main([*args, "--seeds", "0", "1", "2"]) == 0
    assert len(trained) == 9 and trained[-3:] == [("sl", 2), ("ssl_sl", 2), ("mixtraining", 2)]


def test_refuses_results_of_other_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_training(config: Any) -> dict[str, Any]:
        raise AssertionError("bad input must stop before any training")

    monkeypatch.setattr(pt, "train", no_training)
    results = tmp_path / "r.json"
    results.write_text(json.dumps({"settings": {"epochs_sl": 9}, "meta": {}, "runs": {}}))
    before = results.read_text()
    assert pt.main(["--results", str(results), "--tables", "11"]) == 2
    assert "use another --results file" in capsys.readouterr().err
    assert results.read_text() == before
    assert pt.main(["--results", str(tmp_path / "n.json"), "--tables", "7"]) == 2
    assert "--tables: [7]" in capsys.readouterr().err
    assert not (tmp_path / "n.json").exists()


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_tiny_end_to_end_run(tmp_path: Path) -> None:
    results, doc_path = tmp_path / "r.json", tmp_path / "paper.md"
    tiny = ["dataset=digits", "labeled_fraction=0.3", "epochs_ssl=2", "epochs_sl=2"]
    args = ["--results", str(results), "--tables", "11", "--seeds", "0"]
    args += [a for kv in tiny for a in ("--set", kv)]
    assert pt.main([*args, "--write-doc", str(doc_path)]) == 0
    doc = json.loads(results.read_text())
    assert sorted(doc["runs"]) == ["mix/0", "mix_cosine/0", "mix_linear/0", "ssl_sl/0"]
    assert doc["runs"]["mix/0"]["step_counts"]["mix_full"] > 0  # e_mix = floor(0.5 * 2) = 1
    assert "mix_full" not in doc["runs"]["ssl_sl/0"]["step_counts"]
    assert all(0 <= r["test_accuracy"] <= 1 for r in doc["runs"].values())
    assert "### Table 11" in doc_path.read_text()
    assert pt.main(args) == 0  # nothing left to run: the file's runs are unchanged
    assert json.loads(results.read_text())["runs"] == doc["runs"]
