"""What the search-economy savings save: a space's trials with the savings off, then on.

    python -m benchmarks.search_cost                      # the default space, full size
    python -m benchmarks.search_cost --num-samples 2 --epochs-ssl 2 --epochs-sl 2   # smoke

The savings are the two that leave results unchanged: no validation pass in SSL epochs, and SSL
prefixes taken from a content-addressed cache (`trainers/ssl_cache.py`). "Off" validates in SSL
epochs (the switch the equality test flips, `Trainer._validate_ssl`) and passes no cache; "on"
is what a search does. Both arms run the same trial list in the same order, in this process,
one after another: the baselines first (as the search schedules them), then `num_samples`
configurations drawn by a seeded random sampler (not TPE, whose picks would follow the
measured latencies and so differ between arms), then the space's confirmation trials (its
`top_k` best sampled configurations, ranked as `tune-app search` ranks them, on its confirm
seeds). A search runs `max_concurrent` trials at once, so a trial can miss an entry a
concurrent one is still writing: the reuse here is the sequential best case.

Per trial it prints the final metrics of both arms (they must be identical), `compute_s` (the
training time the trial itself spent), its calibrated compute (its own steps times the
calibrated cost of each step kind: independent of machine load, so the ratio holds on a shared
machine), wall time and SSL epochs reused; then the totals and the ratio on / off. Last, a
projection at paper scale from the step-cost model (see `project`). Exit code 1 if a final
metric differs between the arms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import torch

from analysis.pareto import rank_points
from benchmarks.common import build, fake_batch
from benchmarks.flops import per_image_gflops
from benchmarks.gpu_memory import SPACES as GPU_SPACES
from benchmarks.report import markdown_table
from search_spaces import SearchSpace, SpaceError, load_space
from trainers import TrialConfig, run
from trainers.calibrate import calibrate, run_hardware_key
from trainers.pipeline import Trainer, plan_for
from trainers.ssl_cache import MIX_ONWARD, SSLCache
from trainers.steps import flop_counter, step_loss
from tune_app.calibration import (
    calibration_config,
    read_calibrations,
    space_step_kinds,
    table_for,
    tables,
)
from tune_app.searcher import make_sampler, optuna_space
from tune_app.settings import UserInputError, parse_set
from tune_app.suggestion import fixed_settings

FINAL = ("val_accuracy", "test_accuracy", "train_latency_s", "calibrated_latency_s")
PAPER_SPACES = ("vit_tiny_cifar10", "vit_tiny_tinyimagenet", "resnet18_cifar10")


# ------------------------------------------------------------------------------ the trial list


def sample_configs(space: SearchSpace, n: int) -> list[dict[str, Any]]:
    """`n` configurations of the searched knobs, drawn by a random sampler on the space's seed."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one "study created" line per call
    study = optuna.create_study(sampler=make_sampler("random", space.seed))
    dists = optuna_space(space)
    return [study.ask(dists).params for _ in range(n)]


def first_trials(space: SearchSpace, sampled: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Baselines (first, as the search schedules them), then the sampled configurations."""
    baselines = [
        {"role": "baseline", "pipeline": p, "seed": s}
        for p in space.baseline_pipelines
        for s in space.baseline_seeds
    ]
    searched = [{"role": "search", "pipeline": "mixtraining", "seed": space.seed, **c}
                for c in sampled]  # fmt: skip
    return baselines + searched


def confirm_trials(space: SearchSpace, done: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `top_k` best sampled configurations (by the search's own ranking on the space's
    objectives) on each confirm seed. `done`: the trials run so far, each with its `final`."""
    searched = [t for t in done if t["role"] == "search"]
    if not space.confirm_top_k or not searched:
        return []
    metrics, goals = [o.metric for o in space.objectives], [o.goal for o in space.objectives]
    order = rank_points([[t["final"][m] for m in metrics] for t in searched], goals)
    knobs = [k for k in searched[0] if k not in ("role", "final", "seed")]
    return [
        {"role": "confirm", **{k: searched[i][k] for k in knobs}, "seed": seed}
        for i in order[: space.confirm_top_k]
        for seed in space.confirm_seeds
    ]


def trial_config(space: SearchSpace, fixed: dict[str, Any], trial: dict[str, Any]) -> TrialConfig:
    """The TrialConfig a search would build for `trial` (fixed settings + its knobs)."""
    knobs = {k: v for k, v in trial.items() if k not in ("role", "final")}
    return TrialConfig.from_dict({**fixed, **knobs})


# ------------------------------------------------------------------------------ running an arm


@contextlib.contextmanager
def validating_ssl(on: bool) -> Iterator[None]:
    """Validate in SSL epochs (the savings-off behaviour) while inside, then restore."""
    before = Trainer._validate_ssl
    Trainer._validate_ssl = on
    try:
        yield
    finally:
        Trainer._validate_ssl = before


def own_calibrated(rows: list[dict[str, Any]]) -> float:
    """Calibrated seconds of the steps this trial itself ran: its recipe's total minus what the
    inherited (cached) SSL epochs had accumulated."""
    reused = rows[-1]["ssl_epochs_reused"]
    inherited = rows[reused - 1]["calibrated_latency_s"] if reused else 0.0
    return rows[-1]["calibrated_latency_s"] - inherited


def run_trial(config: TrialConfig, costs: dict[str, float], cache: SSLCache | None) -> dict:
    """One trial, as a search's trial runs it; its final metrics and what it cost."""
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    run(config, lambda metrics, state: rows.append(metrics), None, costs, cache)
    wall = time.perf_counter() - started
    last = rows[-1]
    return {
        **{m: last[m] for m in FINAL},
        "compute_s": last["compute_s"],
        "calibrated_compute_s": own_calibrated(rows),
        "ssl_epochs_reused": last["ssl_epochs_reused"],
        "ssl_validations": sum(r["phase"] == "ssl" and r["val_accuracy"] is not None for r in rows),
        "wall_s": wall,
    }


def run_arm(
    space: SearchSpace,
    sampled: list[dict[str, Any]],
    costs: dict[str, float],
    savings: bool,
    cache_dir: Path,
) -> list[dict[str, Any]]:
    """Every trial of the list with the savings off or on; each trial dict gains its `final`."""
    fixed = fixed_settings(space)
    cache = SSLCache(str(cache_dir)) if savings else None
    done: list[dict[str, Any]] = []
    with validating_ssl(not savings):
        for batch in ("first", "confirm"):
            todo = first_trials(space, sampled) if batch == "first" else confirm_trials(space, done)
            for trial in todo:
                final = run_trial(trial_config(space, fixed, trial), costs, cache)
                done.append({**trial, "final": final})
                print(f"savings {'on' if savings else 'off'}: {label(trial)} {final}",
                      file=sys.stderr, flush=True)  # fmt: skip
    return done


def label(trial: dict[str, Any]) -> str:
    rho = f" rho {trial['rho']:.3f}" if "rho" in trial else ""
    return f"{trial['role']} {trial['pipeline']}{rho} seed {trial['seed']}"


# ------------------------------------------------------------------- the cache, as arithmetic


def phase_epochs(config: TrialConfig) -> dict[str, int]:
    """Epochs of each phase of `config`'s plan."""
    return dict(plan_for(config))


def prefix_key(config: TrialConfig) -> tuple[str, int]:
    """What the cache key depends on (`trainers.ssl_cache.ssl_key`, minus the runtime, which
    every trial of a space shares): the settings acting before MIX and the SSL cosine's span."""
    settings = {k: v for k, v in config.to_dict().items() if k not in MIX_ONWARD}
    own = phase_epochs(config)["ssl"]
    span = config.effective_epochs_ssl if config.ssl_schedule == "budget" else own
    return json.dumps(settings, sort_keys=True), span


def simulate_reuse(configs: list[TrialConfig]) -> list[int]:
    """SSL epochs each trial takes from the cache when the trials run one after another: the
    deepest stored epoch of its key, at most its own SSL epochs; it then stores all of them."""
    stored: dict[tuple[str, int], int] = {}
    reused = []
    for config in configs:
        own, key = phase_epochs(config)["ssl"], prefix_key(config)
        reused.append(min(stored.get(key, 0), own) if own else 0)
        if own:
            stored[key] = max(stored.get(key, 0), own)
    return reused


# ------------------------------------------------------------------ projection at paper scale


def step_gflops(model: str, size: int, chans: int) -> dict[str, float]:
    """GFLOPs per image: a training step of each kind, and `eval`, one evaluation forward."""
    costs = per_image_gflops(model, size, chans, "full", flop_counter)
    net = build(model, size, chans)
    batch = fake_batch(2, chans, size)
    with flop_counter() as c, torch.no_grad():
        step_loss(net, "sl", batch, alpha=0.0)
    return {**costs, "eval": c.get_total_flops() / 1e9 / len(batch.x)}


def paper_trials(space: SearchSpace, schedule: str) -> list[TrialConfig]:
    """The space's trial list (baselines, `num_samples` seeded random draws, and its first
    `top_k` draws on the confirm seeds: which ones are best is unknown before training)."""
    fixed = {**fixed_settings(space), "ssl_schedule": schedule}
    sampled = sample_configs(space, space.num_samples)
    confirm = [{"role": "confirm", "pipeline": "mixtraining", **c, "seed": s}
               for c in sampled[: space.confirm_top_k] for s in space.confirm_seeds]  # fmt: skip
    return [trial_config(space, fixed, t) for t in first_trials(space, sampled) + confirm]


def projected_cost(
    configs: list[TrialConfig], gflops: dict[str, float], sizes: dict[str, int], savings: bool
) -> dict[str, float]:
    """Training and validation GFLOPs of a trial list, with the savings off or on.

    Steps per epoch are the trainer's (`n // batch`, drop-last); a step of kind k costs
    `gflops[k] * batch`; a validation pass `gflops["eval"] * n_val`.
    """
    reused = simulate_reuse(configs) if savings else [0] * len(configs)
    train = val = 0.0
    for config, r in zip(configs, reused, strict=True):
        epochs = phase_epochs(config)
        pool = {"ssl": sizes["ssl"], "mix": sizes["train"], "sl": sizes["train"]}
        for phase, n in epochs.items():
            own = n - r if phase == "ssl" else n
            per_epoch = max(1, pool[phase] // config.batch_size) * config.batch_size
            train += own * per_epoch * gflops[phase]
            validated = 0 if phase == "ssl" and savings else n
            val += validated * sizes["val"] * gflops["eval"]
    return {"train": train, "val": val, "reused": float(sum(reused))}


def paper_sizes(space: SearchSpace, images: int) -> dict[str, int]:
    """Split sizes as the trainer makes them (validation held out, then the labelled share)."""
    config = space.trial_config({}, "mixtraining", None)
    if config.ssl_source != "same":
        raise ValueError(f"{space.name}: the projection models ssl_source 'same' only")
    val = int(images * config.val_fraction)
    train = int((images - val) * config.labeled_fraction)
    return {"train": train, "ssl": train, "val": val}


def project(names: list[str]) -> list[list[Any]]:
    """Per paper-scale space and SSL schedule: trials, SSL epochs reused, and the savings-on /
    savings-off ratio of training GFLOPs and of training + validation GFLOPs."""
    rows = []
    for name in names:
        images, size, _ = GPU_SPACES[name]
        space = load_space(name, {"trainer.data_dir": "/unused"})
        gflops = step_gflops(space.trainer["model"], size, 3)
        sizes = paper_sizes(space, images)
        own = space.trial_config({}, "mixtraining", None).ssl_schedule
        for schedule in dict.fromkeys([own, "budget"]):
            configs = paper_trials(space, schedule)
            off, on = (projected_cost(configs, gflops, sizes, s) for s in (False, True))
            rows.append([
                name, schedule, len(configs), int(on["reused"]),
                f"{on['train'] / off['train']:.3f}",
                f"{(on['train'] + on['val']) / (off['train'] + off['val']):.3f}",
            ])  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------ tables


def trial_rows(off: list[dict], on: list[dict], simulated: list[int]) -> list[list[Any]]:
    """One row per trial: both arms' final metrics, whether they agree, and what each cost."""
    rows = []
    for a, b, sim in zip(off, on, simulated, strict=True):
        fa, fb = a["final"], b["final"]
        same = label(a) == label(b) and all(fa[m] == fb[m] for m in FINAL[:2])
        rows.append([
            label(a), f"{fa['val_accuracy']:.4f} / {fb['val_accuracy']:.4f}",
            f"{fa['test_accuracy']:.4f} / {fb['test_accuracy']:.4f}", "yes" if same else "NO",
            f"{fa['compute_s']:.1f} / {fb['compute_s']:.1f}",
            f"{fa['calibrated_compute_s']:.1f} / {fb['calibrated_compute_s']:.1f}",
            f"{fa['wall_s']:.1f} / {fb['wall_s']:.1f}", f"{fb['ssl_epochs_reused']} ({sim})",
        ])  # fmt: skip
    return rows


TRIAL_HEADER = [
    "trial", "val acc off / on", "test acc off / on", "identical", "compute_s off / on",
    "calibrated compute s off / on", "wall s off / on", "SSL epochs reused (predicted)",
]  # fmt: skip


def totals(trials: list[dict]) -> dict[str, float]:
    """Sums over an arm's trials."""
    keys = ("compute_s", "calibrated_compute_s", "wall_s", "ssl_epochs_reused", "ssl_validations")
    return {k: sum(t["final"][k] for t in trials) for k in keys}


def total_rows(off: dict[str, float], on: dict[str, float]) -> list[list[Any]]:
    def ratio(k: str) -> str:
        return f"{on[k] / off[k]:.3f}" if off[k] else "-"

    keys = ("compute_s", "calibrated_compute_s", "wall_s")
    rows = [[arm, *(f"{t[k]:.1f}" for k in keys), int(t["ssl_epochs_reused"]),
             int(t["ssl_validations"])] for arm, t in (("off", off), ("on", on))]  # fmt: skip
    return [*rows, ["on / off", *(ratio(k) for k in keys), "", ""]]


TOTAL_HEADER = [
    "savings", "sum compute_s", "sum calibrated compute s", "sum wall s", "SSL epochs reused",
    "SSL-epoch validation passes",
]  # fmt: skip
PROJECTION_HEADER = [
    "space", "ssl_schedule", "trials", "SSL epochs reused", "training GFLOPs on / off",
    "training + validation GFLOPs on / off",
]  # fmt: skip
PROJECTION_NOTE = """\
How the projection is computed: each paper-scale space's trial list (its baselines first, then
`num_samples` seeded random draws of its knobs, then the first `top_k` draws on its confirm
seeds) is run through `simulate_reuse`, the cache's rule as arithmetic (a trial takes the deepest
stored SSL epoch of its key, at most its own SSL epochs; trials one after another, so the
sequential best case), which the measured run above checks trial by trial ("predicted"). The
cost is the step-cost model of benchmarks/step_costs.py (steps per phase x cost per step) with
FLOPs as the cost: steps per epoch `n // batch` from the space's split sizes, GFLOPs per image of
each step kind counted by the trainer's counter at the space's shapes, and one validation
forward per image for each validated epoch (the final test pass, equal in both arms, is left
out). Savings off: every SSL epoch trained and validated; on: cached epochs not trained, SSL
epochs not validated. FLOPs, not seconds: a calibrated table of the target GPU would weigh the
step kinds by time instead."""


# -------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="vit_mix_same")  # as recorded
    p.add_argument("--num-samples", type=int, help="sampled configurations (default: the space's)")
    p.add_argument("--epochs-ssl", type=int, help="override trainer.epochs_ssl")
    p.add_argument("--epochs-sl", type=int, help="override trainer.epochs_sl")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   help="dotted override of the space, e.g. trainer.batch_size=32")  # fmt: skip
    p.add_argument("--calibration", type=Path, help="a calibration.json to price steps with "
                   "(default: calibrate now, as a search does)")  # fmt: skip
    p.add_argument("--calibration-steps", type=int, default=15)
    p.add_argument("--paper-spaces", nargs="*", default=list(PAPER_SPACES),
                   choices=sorted(GPU_SPACES), metavar="SPACE",
                   help="paper-scale spaces to project, of: " + ", ".join(sorted(GPU_SPACES))
                   + " (none: skip the projection)")  # fmt: skip
    p.add_argument("--projection-only", action="store_true",
                   help="print only the paper-scale projection (no training)")  # fmt: skip
    return p.parse_args(argv)


def space_from(args: argparse.Namespace) -> SearchSpace:
    overrides = parse_set(args.overrides)
    for key, value in (("search.num_samples", args.num_samples),
                       ("trainer.epochs_ssl", args.epochs_ssl),
                       ("trainer.epochs_sl", args.epochs_sl)):  # fmt: skip
        if value is not None:
            overrides[key] = value
    return load_space(args.space, overrides)


def step_costs(space: SearchSpace, args: argparse.Namespace) -> dict[str, float]:
    """Seconds per step kind: this node type's table in `--calibration` (a search's
    calibration.json), or measured as a search measures them."""
    config = calibration_config(fixed_settings(space))
    if args.calibration is not None:
        return table_for(tables(read_calibrations(args.calibration)), run_hardware_key(config))
    return calibrate(config, space_step_kinds(space), steps=args.calibration_steps).table


def print_projection(names: list[str]) -> None:
    print("\nProjection at paper scale:\n")
    print(markdown_table(PROJECTION_HEADER, project(names)))
    print("\n" + PROJECTION_NOTE)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.projection_only:
        print_projection(args.paper_spaces)
        return 0
    try:
        space = space_from(args)
        costs = step_costs(space, args)
    except (SpaceError, ValueError, UserInputError) as e:  # bad space, override or calibration
        print(f"search_cost: {e}", file=sys.stderr)
        return 2
    sampled = sample_configs(space, space.num_samples)
    with tempfile.TemporaryDirectory(prefix="search-cost-") as tmp:
        off = run_arm(space, sampled, costs, False, Path(tmp))
        on = run_arm(space, sampled, costs, True, Path(tmp))
    fixed = fixed_settings(space)
    simulated = simulate_reuse([trial_config(space, fixed, t) for t in on])
    rows = trial_rows(off, on, simulated)
    print(f"Space `{space.name}` ({len(on)} trials), step costs (s): {costs}\n")
    print(markdown_table(TRIAL_HEADER, rows) + "\n")
    print(markdown_table(TOTAL_HEADER, total_rows(totals(off), totals(on))))
    if args.paper_spaces:
        print_projection(args.paper_spaces)
    return 0 if all(r[3] == "yes" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
