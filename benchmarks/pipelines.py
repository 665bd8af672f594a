"""End-to-end accuracy and latency of SL, SSL+SL and MixTraining, several seeds each.

    python benchmarks/pipelines.py --config configs/vit_micro_fashion_mnist.yaml --seeds 0 1

Runs are sequential in one process (the machine's CPUs to each), so latencies are comparable.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from benchmarks.report import markdown_table, record
from trainers import TrialConfig, run
from tune_app.settings import parse_set, read_mapping

# Named variants beside the three pipelines (issue 7: the masked merged pass).
VARIANTS = {"mixtraining_masked": {"pipeline": "mixtraining", "mix_pass": "masked"}}


def run_one(config: TrialConfig) -> dict:
    started = time.perf_counter()
    final = run(config, lambda metrics, state: None)
    return {**final, "wall_s": time.perf_counter() - started}


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {sd:.4f}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/vit_micro_fashion_mnist.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--pipelines", nargs="+", default=["sl", "ssl_sl", "mixtraining"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--section", default="pipelines", help="docs/benchmarks.md section name")
    p.add_argument("--no-record", action="store_true", help="print only")
    args = p.parse_args(argv)
    base = {**read_mapping(args.config), **parse_set(args.overrides)}
    rows, per_pipeline = [], {}
    for pipeline in args.pipelines:
        for seed in args.seeds:
            variant = VARIANTS.get(pipeline, {"pipeline": pipeline})
            config = TrialConfig.from_dict({**base, **variant, "seed": seed})
            out = run_one(config)
            print(
                f"{pipeline} seed {seed}: val {out['val_accuracy']:.4f} test "
                f"{out['test_accuracy']:.4f} latency {out['train_latency_s']:.1f}s",
                file=sys.stderr,
                flush=True,
            )
            per_pipeline.setdefault(pipeline, []).append(out)
            rows.append(
                [
                    pipeline,
                    seed,
                    out["val_accuracy"],
                    out["test_accuracy"],
                    out["train_latency_s"],
                    out["train_gflops"],
                    out["wall_s"],
                ]
            )
    summary = [
        [
            name,
            len(outs),
            spread([o["val_accuracy"] for o in outs]),
            spread([o["test_accuracy"] for o in outs]),
            f"{statistics.fmean(o['train_latency_s'] for o in outs):.1f}",
            f"{statistics.fmean(o['train_gflops'] for o in outs):.0f}",
        ]
        for name, outs in per_pipeline.items()
    ]
    body = (
        f"Settings: `{base}`\n\n"
        + markdown_table(
            ["pipeline", "seeds", "val acc (mean ± sd)", "test acc", "latency s", "GFLOPs"], summary
        )
        + "\n\nPer run:\n\n"
        + markdown_table(
            [
                "pipeline",
                "seed",
                "val acc",
                "test acc",
                "train latency s",
                "train GFLOPs",
                "wall s",
            ],
            rows,
        )
    )
    if args.no_record:
        print(body)
    else:
        record(args.section, "End-to-end pipelines (" + args.section + ")", body)


if __name__ == "__main__":
    main()
