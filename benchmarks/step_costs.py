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

E2E_REPEATS = {"vit_tiny": 1}  # its runs take minutes each on a CPU


def step_costs(config: TrialConfig, repeats: int) -> dict[str, float]:
    """Median seconds of each step kind; `mix` is the full pass, `mix_masked` the masked one,
    `ssl_full` the all-token SSL step (`ssl_pass: full`)."""
    rt = resolve_runtime(config)
    splits = Trainer(config, rt).splits
    size, chans = splits.image_size, splits.in_chans
    dev = str(rt.device)
    batch = fake_batch(config.batch_size, chans, size, device=dev)

    def model(mix_pass: str = "full", ssl_pass: str = "masked"):
        m = build(config.model, size, chans, device=dev)
        m.mix_pass, m.mix_mask_ratio, m.ssl_pass = mix_pass, config.mix_mask_ratio, ssl_pass
        return m

    costs = {
        k: median_seconds(train_step_fn(model(), k, batch, rt.bf16), repeats, device=dev)
        for k in ("ssl", "sl", "mix")
    }
    costs["mix_masked"] = median_seconds(
        train_step_fn(model("masked"), "mix", batch, rt.bf16), repeats, device=dev
    )
    costs["ssl_full"] = median_seconds(
        train_step_fn(model(ssl_pass="full"), "ssl", batch, rt.bf16), repeats, device=dev
    )
    costs["decoder"] = median_seconds(decoder_step_fn(model(), batch, rt.bf16), repeats, device=dev)
    return costs


def predicted_latency(config: TrialConfig, costs: dict[str, float]) -> float:
    trainer = Trainer(config, resolve_runtime(config))
    kind = {
        "mix": "mix_masked" if config.mix_pass == "masked" else "mix",
        "ssl": "ssl_full" if config.ssl_pass == "full" else "ssl",
        "sl": "sl",
    }
    return sum(costs[kind[p]] * trainer.data.steps(p) for p in trainer.phases)


def measure(configs: dict[str, TrialConfig], repeats: int) -> dict[str, float]:
    """End-to-end training latency, alternating the configs so noise falls on all; medians."""
    times: dict[str, list[float]] = {k: [] for k in configs}
    for _ in range(repeats):
        for key, cfg in configs.items():
            times[key].append(run(cfg, lambda m, s: None)["train_latency_s"])
            print(key, f"{times[key][-1]:.1f}s", flush=True)
    return {k: statistics.median(v) for k, v in times.items()}


STEP_HEADER = [
    "model",
    "batch",
    "precision",
    "SSL s",
    "SL s",
    "MIX full s",
    "MIX masked s",
    "decoder s",
    "MIX full / (SSL+SL)",
    "MIX full / (SL+decoder)",
    "MIX masked / SL",
    "SSL full s",
    "MIX full / (SSL full+SL)",
]
RATIO_HEADER = [
    "model",
    "rho",
    "SSL+SL s",
    "Mix full s",
    "Mix masked s",
    "full / SSL+SL predicted",
    "full / SSL+SL measured",
    "masked / SSL+SL predicted",
    "masked / SSL+SL measured",
    "SSL+SL (SSL full) s",
    "Mix full (SSL full) s",
    "SSL full: Mix / SSL+SL predicted",
    "SSL full: Mix / SSL+SL measured",
]


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
        full = TrialConfig.from_dict({**base, "pipeline": "mixtraining"})
        configs = {
            "ssl_sl": full.replace(pipeline="ssl_sl"),
            "full": full,
            "masked": full.replace(mix_pass="masked"),
            # ssl_pass full: the paper's likely all-token SSL phase, in both pipelines
            "ssl_sl_fullssl": full.replace(pipeline="ssl_sl", ssl_pass="full"),
            "full_fullssl": full.replace(ssl_pass="full"),
        }
        c = step_costs(full, args.repeats)
        step_rows.append(
            [
                name,
                full.batch_size,
                "bf16" if resolve_runtime(full).bf16 else "fp32",
                *(f"{c[k]:.4f}" for k in ("ssl", "sl", "mix", "mix_masked", "decoder")),
                f"{c['mix'] / (c['ssl'] + c['sl']):.3f}",
                f"{c['mix'] / (c['sl'] + c['decoder']):.3f}",
                f"{c['mix_masked'] / c['sl']:.3f}",
                f"{c['ssl_full']:.4f}",
                f"{c['mix'] / (c['ssl_full'] + c['sl']):.3f}",
            ]
        )
        print(step_rows[-1], flush=True)
        classic = predicted_latency(configs["ssl_sl"], c)
        full_ssl_pred = predicted_latency(configs["full_fullssl"], c) / predicted_latency(
            configs["ssl_sl_fullssl"], c
        )
        t = measure(configs, E2E_REPEATS.get(name, args.e2e_repeats))
        ratio_rows.append(
            [
                name,
                args.rho,
                f"{t['ssl_sl']:.1f}",
                f"{t['full']:.1f}",
                f"{t['masked']:.1f}",
                f"{predicted_latency(full, c) / classic:.3f}",
                f"{t['full'] / t['ssl_sl']:.3f}",
                f"{predicted_latency(configs['masked'], c) / classic:.3f}",
                f"{t['masked'] / t['ssl_sl']:.3f}",
                f"{t['ssl_sl_fullssl']:.1f}",
                f"{t['full_fullssl']:.1f}",
                f"{full_ssl_pred:.3f}",
                f"{t['full_fullssl'] / t['ssl_sl_fullssl']:.3f}",
            ]
        )
        print(ratio_rows[-1], flush=True)
    body = (
        "Median seconds per training step (forward, backward, AdamW) on one batch, at the batch "
        "size and precision of the end-to-end runs. `decoder` is the decoder's own "
        "forward+backward in a merged step; `SSL full` the all-token SSL step (`ssl_pass: "
        "full`, every token encoded, the mask applied to features, as in the MIX pass). "
        "Targets: MIX full <= 1.15 x (SL + decoder); "
        "Mix masked / SSL+SL <= 0.70 end to end for vit_tiny.\n\n"
        + markdown_table(STEP_HEADER, step_rows)
        + "\n\nEnd-to-end training latency (seed 0), the five configs alternating, median of "
        f"{args.e2e_repeats} runs each (vit_tiny: 1); `predicted` is the cost model from the "
        "steps above (steps per phase x step cost). The `SSL full` columns run both pipelines' "
        "SSL phase with `ssl_pass: full` (the paper's comparison: its SSL step cost more than "
        f"its SL step). Settings: `{args.config}` plus {E2E}.\n\n"
        + markdown_table(RATIO_HEADER, ratio_rows)
    )
    record("step_costs", "Step costs and the MixTraining / SSL+SL latency ratio", body)


if __name__ == "__main__":
    main()
