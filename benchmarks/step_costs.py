"""Per-step costs (SSL, SL, merged MIX, decoder alone) and the end-to-end ratio they predict.

    python benchmarks/step_costs.py

For each model: the median time of one training step of each kind on the same batch, at the
batch size and precision the end-to-end runs use; a cost model predicting the end-to-end
latency of MixTraining / SSL+SL from those steps and each phase's step count; and both
pipelines run side by side to measure that ratio. The paper's figures for reference: merged
0.317 s vs 0.248 s (SL) + 0.295 s (SSL) per step, 1.29x end to end.
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks.common import build, decoder_step_fn, fake_batch, median_seconds, train_step_fn
from benchmarks.report import markdown_table, record
from trainers import TrialConfig, run
from trainers.pipeline import Trainer
from trainers.runtime import resolve_runtime
from tune_app.settings import read_mapping

# vit_tiny runs on a smaller slice of the data so both pipelines finish in minutes on a CPU.
E2E = {
    "vit_micro": {},
    "vit_tiny": {"labeled_fraction": 0.02, "epochs_ssl": 2, "epochs_sl": 2},
}


def step_costs(config: TrialConfig, repeats: int) -> dict[str, float]:
    rt = resolve_runtime(config)
    splits = Trainer(config, rt).splits
    size, chans = splits.image_size, splits.in_chans
    batch = fake_batch(config.batch_size, chans, size)
    costs = {
        kind: median_seconds(
            train_step_fn(build(config.model, size, chans), kind, batch, rt.bf16), repeats
        )
        for kind in ("ssl", "sl", "mix")
    }
    costs["decoder"] = median_seconds(
        decoder_step_fn(build(config.model, size, chans), batch, rt.bf16), repeats
    )
    return costs


def predicted_latency(config: TrialConfig, costs: dict[str, float]) -> float:
    trainer = Trainer(config, resolve_runtime(config))
    return sum(costs[p] * trainer.data.steps(p) for p in trainer.phases)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/vit_micro_fashion_mnist.yaml")
    p.add_argument("--models", nargs="+", default=list(E2E))
    p.add_argument("--rho", type=float, default=0.5)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--e2e-repeats", type=int, default=2, help="end-to-end runs per pipeline")
    args = p.parse_args(argv)
    step_rows, ratio_rows = [], []
    for name in args.models:
        base = {**read_mapping(args.config), "model": name, "rho": args.rho, **E2E.get(name, {})}
        mix = TrialConfig.from_dict({**base, "pipeline": "mixtraining"})
        classic = mix.replace(pipeline="ssl_sl")
        c = step_costs(mix, args.repeats)
        merged_bound = c["mix"] / (c["sl"] + c["decoder"])
        step_rows.append(
            [
                name,
                mix.batch_size,
                "bf16" if resolve_runtime(mix).bf16 else "fp32",
                f"{c['ssl']:.4f}",
                f"{c['sl']:.4f}",
                f"{c['mix']:.4f}",
                f"{c['decoder']:.4f}",
                f"{c['mix'] / (c['ssl'] + c['sl']):.3f}",
                f"{merged_bound:.3f}",
            ]
        )
        print(step_rows[-1], flush=True)
        predicted = predicted_latency(mix, c) / predicted_latency(classic, c)
        # Alternate the two pipelines so machine noise falls on both; keep the medians.
        times: dict[str, list[float]] = {"ssl_sl": [], "mixtraining": []}
        for _ in range(args.e2e_repeats):
            for cfg in (classic, mix):
                times[cfg.pipeline].append(run(cfg, lambda m, s: None)["train_latency_s"])
        measured = {k: statistics.median(v) for k, v in times.items()}
        ratio_rows.append(
            [
                name,
                args.rho,
                f"{measured['ssl_sl']:.1f}",
                f"{measured['mixtraining']:.1f}",
                f"{predicted:.3f}",
                f"{measured['mixtraining'] / measured['ssl_sl']:.3f}",
            ]
        )
        print(ratio_rows[-1], flush=True)
    body = (
        "Median seconds per training step (forward, backward, AdamW) on one batch; `decoder` is "
        "the decoder's own forward+backward in a merged step. Target: MIX <= 1.15 x (SL + "
        "decoder).\n\n"
        + markdown_table(
            [
                "model",
                "batch",
                "precision",
                "SSL s",
                "SL s",
                "MIX s",
                "decoder s",
                "MIX / (SSL+SL)",
                "MIX / (SL+decoder)",
            ],
            step_rows,
        )
        + "\n\nEnd-to-end training latency, MixTraining vs SSL+SL (same settings, seed 0), "
        "alternating, median of `--e2e-repeats` runs each; `predicted` is the cost model from the steps above. Settings:"
        f" `{args.config}` plus {E2E}.\n\n"
        + markdown_table(
            [
                "model",
                "rho",
                "SSL+SL s",
                "MixTraining s",
                "predicted Mix / SSL+SL",
                "measured Mix / SSL+SL",
            ],
            ratio_rows,
        )
    )
    record("step_costs", "Step costs and the MixTraining / SSL+SL latency ratio", body)


if __name__ == "__main__":
    main()
