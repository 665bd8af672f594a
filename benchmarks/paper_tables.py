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
# Zhang et al.'s CIFAR-10 setting; the value MixTraining's Table 10 used is not available here.
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
# The paper's own numbers for these tables are not in this repository.
PAPER_NUMBERS: dict[int, str | None] = {n: None for n in TABLE_NUMBERS}


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


def read_checks(doc: dict[str, Any], tables: list[Table]) -> dict[tuple[str, str], str]:
    """The reading of every check: Holm's correction runs over all checks of `tables`."""
    checks = list(dict.fromkeys(c for t in tables for c in t.checks))
    tested = {c: compare(values(doc, c[0]), values(doc, c[1])) for c in checks}
    done = [c for c in checks if tested[c] is not None]
    adjusted = dict(zip(done, holm([tested[c][1] for c in done]), strict=True)) if done else {}
    return {c: reading(tested[c], adjusted.get(c)) for c in checks}


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


def render_table(doc: dict[str, Any], table: Table, readings: dict) -> str:
    """One table: rows with accuracy over seeds and counted cost, then its checks."""
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
    paper = PAPER_NUMBERS.get(table.number) or "not available here"
    label = {key: lbl for lbl, key in table.rows}
    lines = [
        f"### Table {table.number}: {table.title}",
        "",
        table.note + f" The paper's Table {table.number}: {paper}.",
        "",
        markdown_table(header, rows),
        "",
        "Is the first more accurate than the second (test accuracy)?",
        "",
    ]
    lines += [
        f"- {label.get(a, a)} vs {label.get(b, b)}: {readings[(a, b)]}" for a, b in table.checks
    ]
    return "\n".join(lines)


def kept_notes(path: Path) -> str:
    """The hand-written notes block of an existing page (kept on re-render), or an empty one."""
    text = path.read_text() if path.exists() else ""
    if NOTES_BEGIN in text and NOTES_END in text:
        return NOTES_BEGIN + text.split(NOTES_BEGIN, 1)[1].split(NOTES_END, 1)[0] + NOTES_END
    return f"{NOTES_BEGIN}\n{NOTES_END}"


def render(doc: dict[str, Any], tables: list[int], notes: str = "") -> str:
    """The whole docs/paper.md body from a results document (and a notes block to keep)."""
    chosen = [t for t in TABLES if t.number in tables]
    readings = read_checks(doc, chosen)
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
    body = [render_table(doc, t, readings) for t in chosen]
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
    '"not significant" means the seeds cannot tell the two apart at this scale.'
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
