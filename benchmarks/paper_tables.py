"""CPU analogues of MixTraining's Tables 5, 6, 9, 10 and 11 on Fashion-MNIST, several seeds each.

    python -m benchmarks.paper_tables --results runs/paper.json            # train what is missing
    python -m benchmarks.paper_tables --results runs/paper.json --no-run --write-doc docs/paper.md

Every run takes the fixed trainer settings of the earlier CPU default space (`vit_mix_same`)
plus the cell's own settings, with ONE torch thread, and runs are sequential: the whole run
keeps one CPU core busy. Accuracy of a seed is then independent of the machine's load. Each
finished run is written to the results JSON at once, so a rerun skips it (and refuses a JSON
made with other settings).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch loads: no idle OpenMP pool either

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.verdict import holm, welch_one_sided
from benchmarks.report import markdown_table
from search_spaces import load_space
from tune_app.settings import UserInputError, parse_set

SPACE = "vit_mix_same"  # the earlier CPU default, so recorded tables stay reproducible
RUN_SETTINGS = {"num_threads": 1, "device": "cpu"}
MIX = {"alpha": 0.5, "rho": 0.5, "anneal": "none"}  # the reference MixTraining cell
NOISE = 0.2  # the paper's Table 9 noise level
# Zhang et al.'s CIFAR-10 setting; the paper does not state the mixup alpha of its Table 10.
MIXUP_ALPHA = 1.0
P_LEVEL = 0.05


@dataclass(frozen=True)
class Cell:
    """One configuration, run once per seed: a pipeline and the settings it changes."""

    key: str
    pipeline: str
    settings: tuple[tuple[str, Any], ...] = ()


def _mix(key: str, **changes: Any) -> Cell:
    return Cell(key, "mixtraining", tuple({**MIX, **changes}.items()))


CELLS = {
    c.key: c
    for c in (
        Cell("sl", "sl"),
        Cell("ssl_sl", "ssl_sl"),
        _mix("mix"),
        _mix("mix_alpha0.25", alpha=0.25),
        _mix("mix_alpha0.75", alpha=0.75),
        _mix("mix_rho0.25", rho=0.25),
        _mix("mix_rho0.75", rho=0.75),
        _mix("mix_rho1", rho=1.0),
        Cell("sl_noise", "sl", (("label_noise", NOISE),)),
        Cell("ssl_sl_noise", "ssl_sl", (("label_noise", NOISE),)),
        _mix("mix_noise", label_noise=NOISE),
        Cell("sl_mixup", "sl", (("mixup_alpha", MIXUP_ALPHA),)),
        Cell("ssl_sl_mixup", "ssl_sl", (("mixup_alpha", MIXUP_ALPHA),)),
        _mix("mix_linear", anneal="linear"),
        _mix("mix_cosine", anneal="cosine"),
    )
}


@dataclass(frozen=True)
class Table:
    """One paper table: its rows (label, cell key) and the comparisons read as its trend.

    A check `(a, b)` asks whether cell `a` is more accurate than cell `b`.
    """

    number: int
    title: str
    rows: tuple[tuple[str, str], ...]
    checks: tuple[tuple[str, str], ...]
    note: str


TABLES = (
    Table(
        5,
        "loss ratio alpha (rho 0.5, no annealing)",
        (("SSL+SL", "ssl_sl"), ("alpha 0.25", "mix_alpha0.25"), ("alpha 0.5", "mix"))
        + (("alpha 0.75", "mix_alpha0.75"),),
        (("mix_alpha0.25", "ssl_sl"), ("mix", "ssl_sl"), ("mix_alpha0.75", "ssl_sl")),
        "alpha weights the SSL loss in the MIX phase.",
    ),
    Table(
        6,
        "mix ratio rho (alpha 0.5, no annealing)",
        (("rho 0 (SSL+SL)", "ssl_sl"), ("rho 0.25", "mix_rho0.25"), ("rho 0.5", "mix"))
        + (("rho 0.75", "mix_rho0.75"), ("rho 1", "mix_rho1")),
        (("mix_rho0.25", "ssl_sl"), ("mix", "ssl_sl"), ("mix_rho0.75", "ssl_sl"))
        + (("mix_rho1", "ssl_sl"),),
        "e_mix = floor(rho * min(epochs_ssl, epochs_sl)) of the epochs are MIX epochs.",
    ),
    Table(
        9,
        f"label noise {NOISE}",
        (("SL", "sl_noise"), ("SSL+SL", "ssl_sl_noise"), ("MixTraining", "mix_noise")),
        (("mix_noise", "ssl_sl_noise"), ("mix_noise", "sl_noise")),
        f"each labelled image's label is replaced by another class with probability {NOISE}.",
    ),
    Table(
        10,
        f"baselines with standard mixup (mixup_alpha {MIXUP_ALPHA:g})",
        (("SL + mixup", "sl_mixup"), ("SSL+SL + mixup", "ssl_sl_mixup"))
        + (("SL", "sl"), ("SSL+SL", "ssl_sl"), ("MixTraining (no mixup)", "mix")),
        (("mix", "ssl_sl_mixup"), ("mix", "sl_mixup"), ("ssl_sl_mixup", "ssl_sl")),
        f"mixup_alpha {MIXUP_ALPHA:g} is Zhang et al.'s CIFAR-10 setting (our choice).",
    ),
    Table(
        11,
        "annealing of alpha (alpha 0.5, rho 0.5)",
        (("none", "mix"), ("linear", "mix_linear"), ("cosine", "mix_cosine"))
        + (("SSL+SL", "ssl_sl"),),
        (("mix_linear", "mix"), ("mix_cosine", "mix"), ("mix", "ssl_sl")),
        "linear and cosine ramp the SSL weight down across the MIX phase, mean alpha.",
    ),
)
TABLE_NUMBERS = tuple(t.number for t in TABLES)


@dataclass(frozen=True)
class Effect:
    """One effect of a paper table and the comparison here that stands for it.

    `paper` is two row labels of the paper's values: the effect is a - b in their first column.
    `ours` is two cell keys: a check of the table (shown with its Welch/Holm reading) or, if it
    is none, the difference of the means alone, untested.
    """

    label: str
    paper: tuple[str, str]
    ours: tuple[str, str]


@dataclass(frozen=True)
class PaperValues:
    """The paper's own test accuracies (%) for one table, as printed there (means of 4 seeds,
    no spread given), where they come from, and the effects set beside ours."""

    source: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[float, ...]], ...]
    effects: tuple[Effect, ...]


# Li et al., "MixTraining: A Better Trade-Off Between Compute and Performance": every table
# here is ViT-T. CIFAR-10 (10 classes, like Fashion-MNIST) comes first; Tables 9-11 also give
# 10% of the data, the share nearest to our 10% of the labels. Values as printed there.
_TABLE1 = "their Table 1"
_FULL = ("CIFAR-10", "TinyImageNet", "CIFAR-100")
_C10 = ("CIFAR-10, 10% of the data", "CIFAR-10, full data")
PAPER_NUMBERS: dict[int, PaperValues | None] = {
    5: PaperValues(
        "Li et al., Table 5: ViT-T, full data, rho 0.75 (ours: 0.5), 100 + 100 epochs; the "
        f"SSL+SL row is from {_TABLE1} (ViT-T, full data). The table has no 10% column and "
        "no alpha 0.25 or 0.75; effects are read on CIFAR-10.",
        _FULL,
        (
            (f"SSL+SL ({_TABLE1})", (84.69, 46.65, 57.92)),
            ("alpha 0.01", (79.61, 41.58, 52.58)),
            ("alpha 0.1", (82.19, 53.17, 55.21)),
            ("alpha 0.5", (85.75, 53.86, 58.88)),
            ("alpha 0.9", (86.13, 48.18, 58.47)),
            ("alpha 0.99", (83.75, 42.67, 56.04)),
        ),
        (
            Effect("alpha 0.5 vs SSL+SL", ("alpha 0.5", f"SSL+SL ({_TABLE1})"), ("mix", "ssl_sl")),
            Effect(
                "alpha 0.1 -> 0.5 (here 0.25 -> 0.5)",
                ("alpha 0.5", "alpha 0.1"),
                ("mix", "mix_alpha0.25"),
            ),
            Effect(
                "alpha 0.5 -> 0.9 (here 0.5 -> 0.75)",
                ("alpha 0.9", "alpha 0.5"),
                ("mix_alpha0.75", "mix"),
            ),
        ),
    ),
    6: PaperValues(
        "Li et al., Table 6: ViT-T, full data, alpha 0.5, 100 + 100 epochs; the rho 0 row is "
        f"SSL+SL from {_TABLE1} (ViT-T, full data). Their Table 1's MixTraining, at the "
        "same nominal alpha 0.5 and rho 0.5, differs from Table 6's rho 0.5 (CIFAR-10: 87.13 "
        "against 85.54), so differences across the two tables carry that much uncertainty. "
        "Effects are read on CIFAR-10.",
        _FULL,
        (
            (f"rho 0 (SSL+SL, {_TABLE1})", (84.69, 46.65, 57.92)),
            ("rho 0.25", (85.49, 55.08, 60.98)),
            ("rho 0.5", (85.54, 55.40, 60.15)),
            (f"rho 0.5 ({_TABLE1}'s MixTraining)", (87.13, 55.46, 59.95)),
            ("rho 0.75", (85.75, 53.86, 58.88)),
            ("rho 1", (84.33, 49.21, 55.80)),
        ),
        tuple(
            Effect(f"rho {r} vs rho 0", (f"rho {r}", f"rho 0 (SSL+SL, {_TABLE1})"), (key, "ssl_sl"))
            for r, key in (("0.25", "mix_rho0.25"), ("0.5", "mix"), ("0.75", "mix_rho0.75"))
            + (("1", "mix_rho1"),)
        )
        + (Effect("rho 0.25 -> 1", ("rho 1", "rho 0.25"), ("mix_rho1", "mix_rho0.25")),),
    ),
    9: PaperValues(
        "Li et al., Table 9: ViT-T on CIFAR-10, label noise 0.2 (other settings not restated; "
        "the main experiments use 100 + 100 epochs, alpha 0.5, rho 0.5). Effects are read on "
        "the 10% column.",
        _C10,
        (
            ("SL", (55.80, 81.27)),
            ("SSL+SL", (56.61, 84.17)),
            ("MixTraining", (61.18, 86.13)),
        ),
        (
            Effect(
                "MixTraining vs SSL+SL", ("MixTraining", "SSL+SL"), ("mix_noise", "ssl_sl_noise")
            ),
            Effect("MixTraining vs SL", ("MixTraining", "SL"), ("mix_noise", "sl_noise")),
        ),
    ),
    10: PaperValues(
        "Li et al., Table 10: ViT-T on CIFAR-10, mixup on the two baselines (its alpha is not "
        f"stated); its MixTraining row equals {_TABLE1}'s (100 + 100 epochs, alpha 0.5, rho "
        f"0.5), and the SL and SSL+SL rows without mixup are from {_TABLE1} (ViT-T, CIFAR-10). "
        "Effects are read on the 10% column.",
        _C10,
        (
            ("SL + mixup", (56.45, 83.87)),
            ("SSL+SL + mixup", (57.92, 85.81)),
            (f"SL ({_TABLE1})", (53.40, 81.52)),
            (f"SSL+SL ({_TABLE1})", (56.79, 84.69)),
            ("MixTraining (no mixup)", (60.45, 87.13)),
        ),
        (
            Effect(
                "MixTraining vs SSL+SL + mixup",
                ("MixTraining (no mixup)", "SSL+SL + mixup"),
                ("mix", "ssl_sl_mixup"),
            ),
            Effect(
                "MixTraining vs SL + mixup",
                ("MixTraining (no mixup)", "SL + mixup"),
                ("mix", "sl_mixup"),
            ),
            Effect(
                "SSL+SL + mixup vs SSL+SL",
                ("SSL+SL + mixup", f"SSL+SL ({_TABLE1})"),
                ("ssl_sl_mixup", "ssl_sl"),
            ),
            Effect("SL + mixup vs SL", ("SL + mixup", f"SL ({_TABLE1})"), ("sl_mixup", "sl")),
        ),
    ),
    11: PaperValues(
        "Li et al., Table 11: ViT-T on CIFAR-10; its row without annealing equals "
        f"{_TABLE1}'s MixTraining (100 + 100 epochs, alpha 0.5, rho 0.5), and the schedules' "
        f"exact form is not given. The SSL+SL row is from {_TABLE1} (ViT-T, CIFAR-10). "
        "Effects are read on the 10% column.",
        _C10,
        (
            ("none", (60.45, 87.13)),
            ("linear", (61.49, 86.90)),
            ("cosine", (60.65, 87.00)),
            (f"SSL+SL ({_TABLE1})", (56.79, 84.69)),
        ),
        (
            Effect("linear vs none", ("linear", "none"), ("mix_linear", "mix")),
            Effect("cosine vs none", ("cosine", "none"), ("mix_cosine", "mix")),
            Effect("none vs SSL+SL", ("none", f"SSL+SL ({_TABLE1})"), ("mix", "ssl_sl")),
        ),
    ),
}


def plan(tables: list[int], seeds: list[int]) -> list[tuple[str, int]]:
    """(cell key, seed) of every run the tables need, seed-major (every cell gets seed 0 first,
    so a run stopped early leaves every cell with fewer seeds, not some cells with none)."""
    keys: list[str] = []
    for t in TABLES:
        if t.number in tables:
            for key in [k for _, k in t.rows] + [k for c in t.checks for k in c]:
                keys += [] if key in keys else [key]
    return [(key, seed) for seed in seeds for key in keys]


def base_settings(overrides: dict[str, Any]) -> dict[str, Any]:
    """The fixed settings every run starts from: the space's trainer, one thread, overrides."""
    space = load_space(SPACE)
    return {**space.trainer, **RUN_SETTINGS, **overrides}


def cell_config(base: dict[str, Any], key: str, seed: int) -> Any:
    """The `TrialConfig` of one run (raises `trainers.ConfigError` on an illegal value)."""
    from trainers import TrialConfig

    cell = CELLS[key]
    return TrialConfig.from_dict(
        {**base, **dict(cell.settings), "pipeline": cell.pipeline, "seed": seed}
    )


def train(config: Any) -> dict[str, Any]:
    """Train one run; its accuracies, counted cost and the CPU seconds it took."""
    from trainers import run

    counts: dict[str, int] = {}
    cpu = time.process_time()

    def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        if state is not None:  # the last epoch always carries a checkpoint
            counts.update(state["step_counts"])

    final = run(config, report)
    return {
        "val_accuracy": final["val_accuracy"],
        "test_accuracy": final["test_accuracy"],
        "train_gflops": final["train_gflops"],
        "step_counts": counts,
        "cpu_s": time.process_time() - cpu,
    }


def load_results(path: Path, base: dict[str, Any]) -> dict[str, Any]:
    """The results so far, or a fresh document; refuses one made with other settings."""
    base = json.loads(json.dumps(base))  # as JSON holds it: tuples become lists
    if not path.exists():
        return {"settings": base, "meta": {}, "runs": {}}
    try:
        doc = json.loads(path.read_text())
        settings = doc["settings"]
        doc["runs"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise UserInputError(f"{path}: not a results file of this script ({e})") from e
    if settings != base:
        raise UserInputError(
            f"{path}: made with settings {settings}, not {base}: use another --results file"
        )
    return doc


def save(path: Path, doc: dict[str, Any]) -> None:
    """Write atomically: a kill mid-write leaves the previous file whole."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def commit() -> str:
    """The code's git commit, `+dirty` when the work tree differs from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") or "unknown"


def run_missing(path: Path, doc: dict[str, Any], todo: list[tuple[str, int]]) -> None:
    """Train every planned run not yet in `doc`, saving after each one."""
    meta = doc["meta"]
    meta.setdefault("started", stamp())
    meta.update(command=command(), commit=commit(), planned=[f"{k}/{s}" for k, s in todo])
    for i, (key, seed) in enumerate(todo, 1):
        name = f"{key}/{seed}"
        if name in doc["runs"]:
            continue
        out = train(cell_config(doc["settings"], key, seed))
        doc["runs"][name] = {**out, "cell": key, "seed": seed}
        meta["updated"] = stamp()
        save(path, doc)
        print(
            f"[{i}/{len(todo)}] {name}: test {out['test_accuracy']:.4f} "
            f"val {out['val_accuracy']:.4f} ({out['cpu_s']:.0f} CPU s)",
            flush=True,
        )
    meta["finished"] = stamp()
    save(path, doc)


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def command() -> str:
    return "python " + shlex.join(["-m", "benchmarks.paper_tables", *sys.argv[1:]])


def values(doc: dict[str, Any], key: str, metric: str = "test_accuracy") -> list[float]:
    """Per-seed values of one cell, in seed order."""
    runs = sorted((r for r in doc["runs"].values() if r["cell"] == key), key=lambda r: r["seed"])
    return [r[metric] for r in runs]


def spread(vals: list[float], scale: float = 100.0) -> str:
    """`mean ± sd` in percent (sd over seeds; `-` for one seed, blank for none)."""
    if not vals:
        return "not run"
    mean = statistics.fmean(vals) * scale
    sd = f"{statistics.stdev(vals) * scale:.2f}" if len(vals) > 1 else "-"
    return f"{mean:.2f} ± {sd}"


def compare(a: list[float], b: list[float]) -> tuple[float, float] | None:
    """(mean(a) - mean(b), two-sided Welch p), or None with fewer than two seeds a side."""
    if len(a) < 2 or len(b) < 2:
        return None
    p_up, diff, _, _ = welch_one_sided(a, b, "maximize")
    p_down, _, _, _ = welch_one_sided(a, b, "minimize")
    return diff, min(1.0, 2 * min(p_up, p_down))


Tested = dict[tuple[str, str], tuple[tuple[float, float] | None, float | None]]


def tested_checks(doc: dict[str, Any], tables: list[Table]) -> Tested:
    """Every check's (difference, Welch p) and Holm p, corrected over all checks of `tables`."""
    checks = list(dict.fromkeys(c for t in tables for c in t.checks))
    tested = {c: compare(values(doc, c[0]), values(doc, c[1])) for c in checks}
    done = [c for c in checks if tested[c] is not None]
    adjusted = dict(zip(done, holm([tested[c][1] for c in done]), strict=True)) if done else {}
    return {c: (tested[c], adjusted.get(c)) for c in checks}


def read_checks(doc: dict[str, Any], tables: list[Table]) -> dict[tuple[str, str], str]:
    """The reading of every check: Holm's correction runs over all checks of `tables`."""
    return {c: reading(*result) for c, result in tested_checks(doc, tables).items()}


def reading(result: tuple[float, float] | None, p_holm: float | None) -> str:
    """One check in words: which way the accuracy moved and whether the seeds support it."""
    if result is None or p_holm is None:
        return "too few seeds to test"
    diff, p = result
    if diff == 0:
        return f"no difference (p = {p:.3f})"
    way = "higher" if diff > 0 else "lower"
    verdict = "significant" if p_holm < P_LEVEL else "not significant"
    return f"{way} by {diff * 100:+.2f} points (p = {p:.3f}, Holm {p_holm:.3f}: {verdict})"


def steps(doc: dict[str, Any], key: str) -> str:
    runs = [r for r in doc["runs"].values() if r["cell"] == key]
    if not runs:
        return ""
    counts = runs[0]["step_counts"]
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def render_table(doc: dict[str, Any], table: Table, tested: Tested) -> str:
    """One table: rows with accuracy over seeds and counted cost, its checks, then the paper's
    own values and each of its effects beside ours (or a line saying they are not given)."""
    rows = []
    for label, key in table.rows:
        gflops = values(doc, key, "train_gflops")
        rows.append(
            [
                label,
                len(values(doc, key)),
                spread(values(doc, key)),
                spread(values(doc, key, "val_accuracy")),
                f"{statistics.fmean(gflops):.0f}" if gflops else "",
                steps(doc, key),
            ]
        )
    header = ["setting", "seeds", "test acc % (mean ± sd)", "val acc %", "train GFLOPs", "steps"]
    paper = PAPER_NUMBERS.get(table.number)
    if paper is None:
        said = f" The paper's Table {table.number}: not available here."
    else:
        said = f" The paper's Table {table.number} and its effects follow the checks."
    labels = {key: lbl for lbl, key in table.rows}
    lines = [
        f"### Table {table.number}: {table.title}",
        "",
        table.note + said,
        "",
        markdown_table(header, rows),
        "",
        "Is the first more accurate than the second (test accuracy)?",
        "",
    ]
    lines += [
        f"- {labels.get(a, a)} vs {labels.get(b, b)}: {reading(*tested[(a, b)])}"
        for a, b in table.checks
    ]
    if paper is not None:
        lines += ["", render_paper(doc, table.number, paper, tested)]
    return "\n".join(lines)


def render_paper(doc: dict[str, Any], number: int, paper: PaperValues, tested: Tested) -> str:
    """The paper's values for one table, then each of its effects in the paper and here."""
    at = dict(paper.rows)
    printed: list[list[object]] = [[lbl, *(f"{v:.2f}" for v in vals)] for lbl, vals in paper.rows]
    rows: list[list[object]] = []
    for effect in paper.effects:
        a, b = effect.paper
        theirs = at[a][0] - at[b][0]
        ours, seeds, p_holm = here(doc, effect.ours, tested)
        here_diff = "not run" if ours is None else f"{ours * 100:+.2f}"
        rows.append([effect.label, f"{theirs:+.2f}", here_diff, seeds, agree(theirs, ours, p_holm)])
    header = ["effect", f"paper ({paper.columns[0]})", "here", "here, over the seeds"]
    return "\n".join(
        [
            f"The paper's own values (test accuracy %, means of 4 seeds, no spread given). "
            f"{paper.source}",
            "",
            markdown_table(["paper's setting", *paper.columns], printed),
            "",
            f"Table {number}'s effects in points, the paper's beside ours:",
            "",
            markdown_table([*header, "at this scale"], rows),
        ]
    )


def here(
    doc: dict[str, Any], pair: tuple[str, str], tested: Tested
) -> tuple[float | None, str, float | None]:
    """Our side of an effect: mean difference, what the seeds say of it, and its Holm p (None
    when the pair is not one of the page's checks or has too few seeds)."""
    a, b = values(doc, pair[0]), values(doc, pair[1])
    diff = statistics.fmean(a) - statistics.fmean(b) if a and b else None
    if diff is None:
        return None, "not run", None
    if pair not in tested:
        return diff, "not a check: means only", None
    result, p_holm = tested[pair]
    if result is None or p_holm is None:
        return diff, "too few seeds to test", None
    verdict = "significant" if p_holm < P_LEVEL else "not significant"
    return diff, f"p = {result[1]:.3f}, Holm {p_holm:.3f}: {verdict}", p_holm


def agree(theirs: float, ours: float | None, p_holm: float | None) -> str:
    """Does the paper's effect appear here: same or opposite direction when the seeds resolve
    it after Holm, otherwise which way the means point."""
    if ours is None:
        return "not run"
    if theirs == 0 or ours == 0:
        return "no direction to compare"
    way = "same" if (theirs > 0) == (ours > 0) else "opposite"
    if p_holm is not None and p_holm < P_LEVEL:
        return f"{way} direction"
    unresolved = "not resolved" if p_holm is not None else "untested"
    return f"{unresolved}; mean the {way} way"


def kept_notes(path: Path) -> str:
    """The hand-written notes block of an existing page (kept on re-render), or an empty one."""
    text = path.read_text() if path.exists() else ""
    if NOTES_BEGIN in text and NOTES_END in text:
        return NOTES_BEGIN + text.split(NOTES_BEGIN, 1)[1].split(NOTES_END, 1)[0] + NOTES_END
    return f"{NOTES_BEGIN}\n{NOTES_END}"


def render(doc: dict[str, Any], tables: list[int], notes: str = "") -> str:
    """The whole docs/paper.md body from a results document (and a notes block to keep)."""
    chosen = [t for t in TABLES if t.number in tables]
    tested = tested_checks(doc, chosen)
    meta, planned = doc["meta"], doc["meta"].get("planned", [])
    missing = [n for n in planned if n not in doc["runs"]]
    if missing:
        status = (
            f"**PARTIAL: {len(planned) - len(missing)} of {len(planned)} runs finished**; "
            "the seeds column shows how many each cell has."
        )
    else:
        status = f"Complete: {len(doc['runs'])} runs." if doc["runs"] else "No runs yet."
    cpu = sum(r["cpu_s"] for r in doc["runs"].values())
    head = [
        "# MixTraining's ablation tables at CPU scale",
        "",
        INTRO,
        "",
        f"Command: `{meta.get('command', '')}` at commit `{meta.get('commit', '')}`, "
        f"started {meta.get('started', '')}, last run {meta.get('updated', '')}. "
        f"Rendered with `python -m benchmarks.paper_tables --results RESULTS --no-run "
        f"--write-doc docs/paper.md` at commit `{commit()}`.",
        "",
        status,
        "",
        f"Settings of every run: `{json.dumps(doc['settings'], sort_keys=True)}`.",
        "",
        f"The runs took {cpu / 60:.1f} CPU minutes in all (one thread each; budgeting only, "
        "not a speed comparison).",
    ]
    head += ["", notes] if notes else []
    body = [render_table(doc, t, tested) for t in chosen]
    return "\n".join(head) + "\n\n" + "\n\n".join(body) + "\n\n" + per_run(doc) + "\n"


def per_run(doc: dict[str, Any]) -> str:
    rows = [
        [r["cell"], r["seed"], f"{r['test_accuracy'] * 100:.2f}", f"{r['val_accuracy'] * 100:.2f}"]
        for r in sorted(doc["runs"].values(), key=lambda r: (r["cell"], r["seed"]))
    ]
    return "### Every run\n\n" + markdown_table(["cell", "seed", "test acc %", "val acc %"], rows)


NOTES_BEGIN = "<!-- BEGIN notes: hand-written, kept when the page is re-rendered -->"
NOTES_END = "<!-- END notes -->"
INTRO = (
    "CPU analogues of Tables 5 (alpha), 6 (rho), 9 (label noise), 10 (mixup baselines) and 11 "
    '(annealing) of Li et al., "MixTraining: A Better Trade-Off Between Compute and '
    'Performance". The paper runs ViT-T / ResNet-18 on CIFAR and TinyImageNet for 100 + 100 '
    "epochs; here every run is the earlier CPU default space (`vit_mix_same`: `vit_micro`, "
    "Fashion-MNIST, 10% of the labels, SSL on the labelled images, 4 + 4 epochs, batch 64) with "
    "one torch thread. Accuracy of a seed does not depend on the machine's load. Checks use a "
    "two-sided Welch t-test over the seeds, Holm-corrected across every check on this page; "
    '"not significant" means the seeds cannot tell the two apart at this scale. Each table '
    "ends with the paper's own values for it (ViT-T; CIFAR-10 first, the dataset nearest to "
    "Fashion-MNIST) and each of its effects in the paper beside the same effect here, with "
    "whether it appears at this scale: in the same or the opposite direction where the seeds "
    "resolve it after Holm, otherwise which way the means point."
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", required=True, type=Path, help="results JSON (read and extended)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--tables", nargs="+", type=int, default=list(TABLE_NUMBERS))
    p.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE")
    p.add_argument("--no-run", action="store_true", help="only render the results so far")
    p.add_argument("--write-doc", type=Path, help="render the markdown into this file")
    args = p.parse_args(argv)
    try:
        if bad := sorted(set(args.tables) - set(TABLE_NUMBERS)):
            raise UserInputError(f"--tables: {bad} not among {list(TABLE_NUMBERS)}")
        base = base_settings(parse_set(args.overrides))
        doc = load_results(args.results, base)
        todo = plan(args.tables, args.seeds)
        for key, seed in todo:  # every config is checked before the first run starts
            cell_config(base, key, seed)
    except (UserInputError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not args.no_run:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        run_missing(args.results, doc, todo)
    if args.write_doc:
        args.write_doc.write_text(render(doc, args.tables, kept_notes(args.write_doc)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
