"""Our SL epoch vs a minimal hand-written PyTorch loop: same model, data, batch and augmentation.

    python benchmarks/overhead.py

Rounds alternate (ours, minimal, ours, ...) so machine noise hits both; medians are compared.
Target: minimal / ours >= 0.95 (our loop costs at most ~5% more).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks.report import markdown_table, record
from trainers import TrialConfig
from trainers.data import augment, normalize
from trainers.models import model_for
from trainers.pipeline import Trainer
from trainers.runtime import resolve_runtime, synchronize
from tune_app.settings import read_mapping


def ours(config: TrialConfig) -> float:
    trainer = Trainer(config, resolve_runtime(config))
    trainer.start_segment("sl")
    return trainer.train_epoch("sl")["train_s"]


def minimal(config: TrialConfig) -> float:
    """The loop a person would write by hand around the same tensors and model."""
    torch.manual_seed(config.seed)
    rt = resolve_runtime(config)
    s = Trainer(config, rt).splits  # on rt.device: the model must be there too
    model = model_for(config, s.num_classes, s.image_size, s.in_chans)
    model = model.to(rt.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr_sl * config.batch_size / 256)
    g = torch.Generator().manual_seed(config.seed)
    bs = config.batch_size
    synchronize(rt.device)
    start = time.perf_counter()
    perm = torch.randperm(len(s.train_x), generator=g).to(rt.device)
    for i in range(len(s.train_x) // bs):
        idx = perm[i * bs : (i + 1) * bs]
        x = normalize(augment(s.train_x[idx], g), s.mean, s.std)
        with rt.autocast():
            loss = F.cross_entropy(model(x), s.train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    synchronize(rt.device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/vit_micro_fashion_mnist.yaml")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    config = TrialConfig.from_dict({**read_mapping(args.config), "pipeline": "sl"})
    times = {"ours": [], "minimal": []}
    for _ in range(args.rounds):
        times["ours"].append(ours(config))
        times["minimal"].append(minimal(config))
        print({k: f"{v[-1]:.2f}" for k, v in times.items()}, flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [
        [k, args.rounds, f"{med[k]:.3f}", " ".join(f"{t:.2f}" for t in times[k])] for k in times
    ]
    body = (
        f"One SL epoch of `{args.config}` ({config.model}, batch {config.batch_size}).\n\n"
        + markdown_table(["loop", "rounds", "median s", "all s"], rows)
        + f"\n\nminimal / ours = **{med['minimal'] / med['ours']:.3f}** (target >= 0.95)"
    )
    record("overhead", "Pipeline overhead vs a minimal PyTorch loop", body)


if __name__ == "__main__":
    main()
