"""Training GFLOPs per step kind and per pipeline, with attention counted (and without, as before).

    python -m benchmarks.flops

FLOPs do not depend on timing or on the trained weights: each step kind is counted once on a
small batch (per image, FLOPs are linear in the batch) and a pipeline's total is the per-image
count of each phase times the images its epochs train on (drop-last batches, as the trainer).
"attention counted" is what `train_gflops` reports; "torch only" is torch's bare
FlopCounterMode, which counts 0 for the CPU fused attention kernel (what it reported before).
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import build, fake_batch
from benchmarks.pipelines import VARIANTS
from benchmarks.report import markdown_table, record
from trainers import TrialConfig
from trainers.pipeline import Trainer
from trainers.runtime import Runtime
from trainers.steps import flop_counter, step_loss
from tune_app.settings import read_mapping

KINDS = ("ssl", "sl", "mix")
# ViT-T at the paper spaces' shapes: CIFAR-10 (32 px, patch 2) and TinyImageNet (64 px, patch 4)
PAPER_SHAPES = {"vit_tiny cifar10": (32, 3), "vit_tiny tinyimagenet": (64, 3)}


def per_image_gflops(
    model_name: str, size: int, chans: int, mix_pass: str, counter: type
) -> dict[str, float]:
    """GFLOPs per image of one forward+backward step of each kind, counted by `counter()`."""
    out = {}
    batch = fake_batch(2, chans, size)
    for kind in KINDS:
        model = build(model_name, size, chans)
        model.mix_pass = mix_pass
        with counter() as c:
            step_loss(model, kind, batch, alpha=0.5)["loss"].backward()
        out[kind] = c.get_total_flops() / 1e9 / len(batch.x)
    return out


def bare_counter() -> FlopCounterMode:
    return FlopCounterMode(display=False)


def pipeline_gflops(trainer: Trainer, per_image: dict[str, float]) -> float:
    """Sum over the run's epochs of (images the epoch trains on) * (GFLOPs per image)."""
    data = trainer.data

    def images(kind: str) -> int:
        pool = len(data.ssl_pool) if kind == "ssl" else len(data.splits.train_x)
        return data.steps(kind) * min(data.batch_size, pool)

    return sum(per_image[p] * images(p) for p in trainer.phases)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/vit_micro_fashion_mnist.yaml")
    p.add_argument("--pipelines", nargs="+", default=[*("sl", "ssl_sl", "mixtraining"), *VARIANTS])
    args = p.parse_args(argv)
    base = read_mapping(args.config)
    torch.manual_seed(0)
    rows = []
    for pipeline in args.pipelines:
        config = TrialConfig.from_dict({**base, **VARIANTS.get(pipeline, {"pipeline": pipeline})})
        trainer = Trainer(config, Runtime(torch.device("cpu"), False, 1))
        s = trainer.splits
        shape = (config.model, s.image_size, s.in_chans, config.mix_pass)
        ours, bare = (per_image_gflops(*shape, c) for c in (flop_counter, bare_counter))
        new, old = pipeline_gflops(trainer, ours), pipeline_gflops(trainer, bare)
        rows.append([pipeline, f"{old:.0f}", f"{new:.0f}", f"{new / old - 1:+.1%}"])
    step_rows = []
    for label, (size, chans) in PAPER_SHAPES.items():
        model = label.split()[0]
        ours = per_image_gflops(model, size, chans, "full", flop_counter)
        bare = per_image_gflops(model, size, chans, "full", bare_counter)
        for kind in KINDS:
            gain = ours[kind] / bare[kind] - 1
            step_rows.append(
                [label, kind, f"{bare[kind]:.3f}", f"{ours[kind]:.3f}", f"{gain:+.1%}"]
            )
    body = (
        f"Training GFLOPs of each pipeline of `{args.config}` ({base.get('model')}), as "
        "`train_gflops` reports them at the end of a run:\n\n"
        + markdown_table(["pipeline", "torch only", "attention counted", "missing before"], rows)
        + "\n\nPer image, one training step (forward + backward) of each kind at the paper "
        "spaces' shapes:\n\n"
        + markdown_table(
            ["model / data", "step", "torch only GFLOPs", "attention counted", "missing before"],
            step_rows,
        )
    )
    record("flops", "Training FLOPs with attention counted", body)


if __name__ == "__main__":
    main()
