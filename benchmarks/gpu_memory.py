"""Estimated peak GPU memory per trial of each paper-scale space, and the GPU each packing needs.

    python -m benchmarks.gpu_memory

From shapes only (trainers/memory.py: one step per phase traced on the `meta` device), so it
runs without a GPU or the datasets: the split sizes are those the spaces produce (CIFAR-10:
50,000 training images, TinyImageNet: 100,000; 10% held out for validation, then
`labeled_fraction` of the rest labelled).
"""

from __future__ import annotations

import argparse

from benchmarks.common import shaped_splits
from benchmarks.report import markdown_table, record
from search_spaces import load_space
from trainers.memory import FRAGMENTATION, GB, phase_peaks

SPACES = {  # name -> (training images, image size, classes)
    "vit_tiny_cifar10": (50_000, 32, 10),
    "vit_tiny_tinyimagenet": (100_000, 64, 200),
    "resnet18_cifar10": (50_000, 32, 10),
}


def space_rows(name: str) -> list[list[object]]:
    n, size, classes = SPACES[name]
    space = load_space(name, {"trainer.data_dir": "/unused"})
    config = space.trial_config({}, "mixtraining", None)
    val = int(n * config.val_fraction)
    splits = shaped_splits(int((n - val) * config.labeled_fraction), val, 0, 3, size, classes)
    rows = []
    for bf16 in (True, False):
        peaks = phase_peaks(config, splits, bf16)
        top = max(peaks.values()) * (1 + FRAGMENTATION)
        per_phase = ", ".join(f"{k} {v / GB:.1f}" for k, v in peaks.items())
        rows.append(
            [
                name,
                "bf16" if bf16 else "fp32",
                config.batch_size,
                per_phase,
                f"{top / GB:.1f}",
                f"gpu: {space.gpu:g}",
                f"{top / space.gpu / GB:.0f}",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spaces", nargs="+", default=list(SPACES))
    args = p.parse_args(argv)
    rows = [row for name in args.spaces for row in space_rows(name)]
    header = [
        "space",
        "precision",
        "batch",
        "peak GB per phase (estimate)",
        f"one trial GB (+{FRAGMENTATION:.0%})",
        "packing",
        "GPU GB needed",
    ]
    body = (
        "Estimated from shapes (`trainers/memory.py`; includes 0.5 GB CUDA context per trial, "
        "not measured on a GPU):\n\n" + markdown_table(header, rows)
    )
    record("gpu_memory", "Peak GPU memory per trial (estimate)", body)


if __name__ == "__main__":
    main()
