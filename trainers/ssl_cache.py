"""A content-addressed cache of SSL-phase states, so trials that share an SSL prefix train it once.

Only the MIX phase onward depends on `alpha`, `rho`, `lam`, `anneal`: trials that agree on every
setting acting before MIX run the same SSL epochs bit for bit. The key hashes exactly those
settings (everything but `MIX_ONWARD`), the span of the SSL learning-rate schedule, the resolved
device kind, precision and thread count, and the source of `trainers/` (a code change is a new
key). An entry is one file per SSL epoch, `<root>/<key>/epoch-<k>.pt`: a copy of the trainer's
state after that epoch, never a link into a trial folder that Ray may prune. Writes go to a
unique temporary name and are renamed into place, so two trials producing the same entry at
once both succeed; a torn, foreign or unreadable file is a miss, never a crash.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from trainers.config import TrialConfig
from trainers.files import write_atomic
from trainers.runtime import Runtime

FORMAT = 1
# Settings that act from the MIX phase on (or only on evaluation / placement): not in the key.
# `epochs_ssl`, `epochs_sl`, `rho` and `pipeline` enter only through the SSL schedule's span.
MIX_ONWARD = frozenset(
    {
        "pipeline",
        "epochs_ssl",
        "epochs_sl",
        "alpha",
        "rho",
        "lam",
        "anneal",
        "mix_pass",
        "mix_mask_ratio",
        "sl_accel",
        "sl_accel_ratio",
        "sl_skip_fraction",
        "lr_sl",
        "warmup_sl",
        "ssl_schedule",
        "device",
        "eval_batch_size",
        "data_cache",  # where the prepared data lives, not what it holds
    }
)


@functools.cache
def code_version() -> str:
    """sha256 over every `.py` file of the `trainers` package (path and content)."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for file in sorted(root.rglob("*.py")):
        digest.update(file.relative_to(root).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def ssl_key(config: TrialConfig, rt: Runtime, schedule_epochs: int) -> str:
    """The cache key of `config`'s SSL phase.

    Args:
        config: the trial's settings.
        rt: where it runs (device kind, bf16, threads change the numbers).
        schedule_epochs: the epochs the SSL learning-rate cosine spans.
    """
    settings = {k: v for k, v in config.to_dict().items() if k not in MIX_ONWARD}
    identity = {
        "format": FORMAT,
        "settings": settings,
        "schedule_epochs": schedule_epochs,
        "device_kind": rt.device.type,
        "bf16": rt.bf16,
        "threads": rt.threads,
        "code": code_version(),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


class SSLCache:
    """SSL-phase states under `root` (a folder every trial of the search can reach)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, key: str, epoch: int) -> Path:
        return self.root / key / f"epoch-{epoch}.pt"

    def store(self, key: str, epoch: int, state: dict[str, Any]) -> None:
        """Write the state after SSL epoch `epoch`, unless an entry is already there."""
        target = self.path(key, epoch)
        if target.exists():
            return  # same key, same epoch: the same bits, written by another trial
        entry = {"format": FORMAT, "key": key, "epoch": epoch, "state": state}
        write_atomic(target, lambda tmp: torch.save(entry, tmp))  # readers: nothing or all

    def load(self, key: str, epoch: int) -> dict[str, Any] | None:
        """The state after SSL epoch `epoch`, or None when missing, torn or not ours."""
        target = self.path(key, epoch)
        if not target.is_file():
            return None
        try:
            entry = torch.load(target, map_location="cpu", weights_only=True)
        except Exception as e:  # a torn or foreign file: a miss; say so, train instead
            print(f"trainers: SSL cache: ignoring {target}: {type(e).__name__}", file=sys.stderr)
            return None
        ok = isinstance(entry, dict) and entry.get("format") == FORMAT
        if not ok or entry.get("key") != key or entry.get("epoch") != epoch:
            print(f"trainers: SSL cache: ignoring {target}: not this entry", file=sys.stderr)
            return None
        return entry["state"]

    def deepest(self, key: str, max_epoch: int) -> tuple[int, dict[str, Any]] | None:
        """The deepest readable entry of `key` with epoch <= `max_epoch`, or None."""
        for epoch in range(max_epoch, 0, -1):
            state = self.load(key, epoch)
            if state is not None:
                return epoch, state
        return None
