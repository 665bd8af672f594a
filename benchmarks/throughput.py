"""Images/s of one training step per model preset, fp32 vs bf16 autocast, at batch 256.

    python benchmarks/throughput.py            # 28x28x1 (Fashion-MNIST), every preset

A step is forward + backward + AdamW, exactly the pipeline's step of that kind (SL: all tokens
through the encoder; SSL: MAE with 75% masked; MIX: one encoder pass feeding both heads).
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import build, fake_batch, median_seconds, train_step_fn
from benchmarks.report import markdown_table, record
from trainers.models import MODELS


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--chans", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="0 = torch's default")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = fake_batch(args.batch, args.chans, args.size, device=args.device)
    rows = []
    for name in args.models:
        for kind in ("sl", "ssl", "mix"):
            rates = []
            for bf16 in (False, True):
                model = build(name, args.size, args.chans, device=args.device)
                step = train_step_fn(model, kind, batch, bf16)
                seconds = median_seconds(step, args.repeats, device=args.device)
                rates.append(args.batch / seconds)
            rows.append(
                [name, kind, f"{rates[0]:.0f}", f"{rates[1]:.0f}", f"{rates[1] / rates[0]:.2f}"]
            )
            print(rows[-1], flush=True)
    body = (
        f"Batch {args.batch}, {args.size}x{args.size}x{args.chans}, median of "
        f"{args.repeats} steps after 2 warm-up steps.\n\n"
        + markdown_table(["model", "step", "fp32 img/s", "bf16 img/s", "bf16 / fp32"], rows)
    )
    record("throughput", "Training-step throughput per preset (fp32 vs bf16)", body)


if __name__ == "__main__":
    main()
