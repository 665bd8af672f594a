"""Step costs of timm backbones beside the presets: what the merged MIX pass saves on each.

    python -m benchmarks.model_step_costs [--repeats 5] [--threads 2]

For each model at its image size: the median seconds of one training step (forward, backward,
AdamW) of each kind on one fp32 batch of 64, and the ratios a user reads off: the merged MIX
step against an SSL step plus an SL step (what MixTraining saves per merged epoch), and for
ViTs the masked MIX pass against an SL step. Recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import fake_batch, median_seconds, train_step_fn
from benchmarks.report import markdown_table, record
from trainers.models import create_model, model_summary

# (model, image size, channels, create_model options): presets at their CPU sizes, and two
# timm backbones a user might name, sized for small images
MODELS = [
    ("vit_micro", 28, 1, {}),
    ("resnet_micro", 28, 1, {}),
    ("timm/deit_tiny_patch16_224", 32, 3, {"patch_size": 4}),
    ("timm/resnet18", 64, 3, {}),
    ("timm/convnext_atto", 64, 3, {}),
]


def costs(name: str, size: int, chans: int, options: dict, repeats: int) -> list[object]:
    torch.manual_seed(0)
    batch = fake_batch(64, chans, size)

    def model(mix_pass: str = "full"):  # a fresh model per kind: no state carried over
        m = create_model(name, 10, size, chans, **options).train()
        m.mix_pass = mix_pass
        return m

    s = {
        k: median_seconds(train_step_fn(model(), k, batch, False), repeats)
        for k in ("ssl", "sl", "mix")
    }
    vit = "patch_grid" in model_summary(model(), size)
    masked = (
        median_seconds(train_step_fn(model("masked"), "mix", batch, False), repeats)
        if vit
        else None
    )
    params = model_summary(model(), size)["parameters"] / 1e6
    shape = model_summary(model(), size)
    grid = shape.get("patch_grid") or shape.get("feature_map")
    return [
        name,
        f"{size}x{size}x{chans}",
        "MAE" if vit else "AE",
        f"{grid[0]}x{grid[1]}",
        round(params, 2),
        round(s["ssl"], 4),
        round(s["sl"], 4),
        round(s["mix"], 4),
        "-" if masked is None else round(masked, 4),
        round(s["mix"] / (s["ssl"] + s["sl"]), 3),
        "-" if masked is None else round(masked / s["sl"], 3),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [costs(*m, args.repeats) for m in MODELS]
    header = [
        "model",
        "input",
        "path",
        "grid / map",
        "params M",
        "SSL s",
        "SL s",
        "MIX full s",
        "MIX masked s",
        "MIX full / (SSL+SL)",
        "MIX masked / SL",
    ]
    body = (
        f"Median of {args.repeats} steps after 2 warm-up steps, batch 64, fp32, "
        f"{args.threads} threads; a fresh model per step kind.\n\n" + markdown_table(header, rows)
    )
    record("model_step_costs", "Step costs of timm backbones beside the presets", body)


if __name__ == "__main__":
    main()
