"""mixTrain input mixing in the SL phase: SL-phase time and accuracy of none / mixup / cutmix,
and random sample skipping tuned to the same work per epoch (the paper's honest baseline).

    python -m benchmarks.accel --seeds 0 1 2

Runs are sequential in one process. Skipping drops `mean mixed fraction / 2` of the samples
per epoch: the share of items mixup's pairing saved, so it does the same work.
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks.pipelines import spread
from benchmarks.report import markdown_table, record
from trainers import TrialConfig
from tune_app.settings import parse_set, read_mapping

# Krithivasan et al. 2024 report 1.3-1.6x faster training at about 0.2% top-1 accuracy cost.
PAPER = "paper: 1.3-1.6x speed-up (ImageNet, CIFAR-10), about -0.2% top-1"


def mean_mixed(out: dict) -> float:
    return statistics.fmean(out["mixed"]) if out["mixed"] else 0.0


def run_accel(base: dict, accel: str, seed: int, skip: float = 0.0) -> dict:
    config = TrialConfig.from_dict(
        {**base, "pipeline": "sl", "sl_accel": accel, "seed": seed, "sl_skip_fraction": skip}
    )
    rows: list[dict] = []
    from trainers import run

    final = run(config, lambda m, s: rows.append(m))
    return {**final, "mixed": [r.get("mixed_fraction") or 0.0 for r in rows]}  # every epoch


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/vit_micro_fashion_mnist.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = p.parse_args(argv)
    base = {**read_mapping(args.config), **parse_set(args.overrides)}
    outs: dict[str, list[dict]] = {}
    for seed in args.seeds:  # seeds outermost: machine drift falls on every variant alike
        for accel in ("none", "mixup", "cutmix"):
            outs.setdefault(accel, []).append(run_accel(base, accel, seed))
            print(accel, seed, outs[accel][-1]["train_latency_s"], flush=True)
    skip = statistics.fmean(mean_mixed(o) for o in outs["mixup"]) / 2
    outs["skip"] = [run_accel(base, "skip", seed, skip) for seed in args.seeds]
    ref_time = statistics.fmean(o["train_latency_s"] for o in outs["none"])
    ref_acc = statistics.fmean(o["test_accuracy"] for o in outs["none"])
    rows = []
    for accel, runs in outs.items():
        t = statistics.fmean(o["train_latency_s"] for o in runs)
        acc = statistics.fmean(o["test_accuracy"] for o in runs)
        rows.append(
            [
                accel if accel != "skip" else f"skip {skip:.3f}",
                len(runs),
                f"{t:.1f}",
                f"{ref_time / t:.3f}",
                spread([o["test_accuracy"] for o in runs]),
                f"{acc - ref_acc:+.4f}",
                f"{statistics.fmean(mean_mixed(o) for o in runs):.3f}",
            ]
        )
    body = f"SL pipeline only (`pipeline: sl`), settings `{base}`. {PAPER}.\n\n" + markdown_table(
        [
            "sl_accel",
            "seeds",
            "SL time s",
            "speed-up vs none",
            "test acc (mean ± sd)",
            "delta vs none",
            "mean mixed fraction",
        ],
        rows,
    )
    record("accel", "mixTrain input mixing in the SL phase", body)


if __name__ == "__main__":
    main()
