"""`run(config, report, checkpoint)`: the three-phase MixTraining loop.

The phases are data (`phase_plan`) driven by one loop and one loss function. Two optimiser
segments: the SSL phase has its own AdamW + cosine schedule at `lr_ssl`; the MIX and SL phases
share one AdamW + cosine schedule at `lr_sl` spanning all `epochs_sl` supervised epochs, so the
classifier's schedule is the same as the SL and SSL+SL baselines' (only the first `e_mix` of
those epochs also carry the SSL loss). A fresh optimiser at the SSL->MIX boundary mirrors the
fine-tuning step of the classic pipeline.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from timm.optim import param_groups_weight_decay

from trainers.accel import InputMixer, check_accel
from trainers.config import TrialConfig
from trainers.data import DataOptions, Splits, build_splits, channel_constants, normalize
from trainers.errors import NonFiniteLossError, SetupError
from trainers.models import MixModel, model_for
from trainers.plan import alpha_at, epoch_phases, lr_factor
from trainers.pricing import calibrated_seconds, config_step_kinds, plan_for, step_kind
from trainers.runtime import Runtime, host, resolve_runtime, synchronize
from trainers.ssl_cache import SSLCache, ssl_key
from trainers.steps import (
    Batch,
    BatchSource,
    SeededMixup,
    count_step_gflops,
    mixed_batches,
    step_loss,
    with_mixup,
)

Report = Callable[[dict[str, Any], dict[str, Any] | None], None]
# 2: per-image FLOPs, mixTrain state. 3: step counts per kind (calibrated_latency_s), compute_s,
# the CUDA RNG state of the run's own device only, mixTrain's running thresholds, the papers'
# new TrialConfig fields and ViT-T's wider decoder.
STATE_VERSION = 3


def load_splits(config: TrialConfig, device: torch.device) -> Splits:
    splits = build_splits(
        config.dataset,
        config.data_dir,
        val_fraction=config.val_fraction,
        labeled_fraction=config.labeled_fraction,
        ssl_source=config.ssl_source,
        unlabeled_fraction=config.unlabeled_fraction,
        label_noise=config.label_noise,
        seed=config.seed,
        options=data_options(config),
    )
    if device.type == "cpu":
        return splits
    moved = {k: getattr(splits, k) for k in ("train_x", "train_y", "val_x", "val_y", "ssl_x")}
    moved = {k: (v.to(device) if v is not None else None) for k, v in moved.items()}
    return type(splits)(**{**splits.__dict__, **moved})


def data_options(config: TrialConfig) -> DataOptions:
    return DataOptions(
        image_size=config.image_size,
        unlabeled_dir=config.unlabeled_dir,
        test_fraction=config.test_fraction,
        cache_dir=config.data_cache,
    )


def make_optimizer(
    model: MixModel, config: TrialConfig, segment: str, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with decay off for norms/biases, LR = base * batch / 256, warm-up + cosine.

    Betas and weight decay are the segment's own (`betas_ssl`, `weight_decay_sl`, ...) when set,
    else the shared `betas` / `weight_decay`.
    """
    base = config.lr_ssl if segment == "ssl" else config.lr_sl
    warmup = config.warmup_ssl if segment == "ssl" else config.warmup_sl
    groups = param_groups_weight_decay(model, config.segment_weight_decay(segment))
    lr = base * config.batch_size / 256
    opt = torch.optim.AdamW(groups, lr=lr, betas=config.segment_betas(segment))
    warmup_steps = int(warmup * total_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total_steps, warmup_steps)
    )
    return opt, sched


@torch.inference_mode()
def accuracy(
    model: MixModel, x: torch.Tensor, y: torch.Tensor, rt: Runtime, splits: Splits, batch_size: int
) -> float:
    """Top-1 accuracy of the classifier on uint8 images `x` (no augmentation).

    The data moves to the device once (a no-op when already there) and the count of correct
    predictions stays there until the end: one read per call, none per batch.
    """
    model.eval()
    x, y = x.to(rt.device), y.to(rt.device)
    mean, std = channel_constants(splits.mean, splits.std, rt.device)
    correct = torch.zeros((), dtype=torch.long, device=rt.device)
    for start in range(0, len(x), batch_size):
        xb = normalize(x[start : start + batch_size], mean, std)
        with rt.autocast():
            logits = model.sl_logits(xb)
        correct += (logits.argmax(1) == y[start : start + batch_size]).sum()
    model.train()
    return int(host(correct)) / max(1, len(x))


# Where and how fast a run executes, not what it trains: a retry may land elsewhere.
EXECUTION_FIELDS = (
    "device",
    "num_threads",
    "eval_batch_size",
    "checkpoint_every",
    "checkpoint_minutes",
    "data_cache",
)


def same_recipe(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two config dicts that train the same thing (execution fields aside)."""
    strip = lambda d: {k: v for k, v in d.items() if k not in EXECUTION_FIELDS}  # noqa: E731
    return strip(a) == strip(b)


def cuda_rng_state(device: torch.device) -> torch.Tensor | None:
    """The CUDA generator state of the run's own device only: a trial sees other GPUs (or none
    after a retry elsewhere), and restoring states for devices it cannot see would raise."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def set_cuda_rng_state(device: torch.device, state: torch.Tensor | None) -> None:
    """Restore `cuda_rng_state`'s output on `device` (nothing on a CPU run)."""
    if device.type == "cuda" and state is not None:
        torch.cuda.set_rng_state(state, device)


class EpochClock:
    """An epoch's training seconds: the wall clock with the device's queue drained at both ends,
    less the spans spent `paused` (work that is not training, e.g. the FLOP probe)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        synchronize(device)
        self.start = time.perf_counter()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        synchronize(self.device)
        paused = time.perf_counter()
        yield
        synchronize(self.device)  # the paused work's GPU queue is not training either
        self.start += time.perf_counter() - paused

    def stop(self) -> float:
        synchronize(self.device)
        return time.perf_counter() - self.start


class EpochTally:
    """An epoch's loss sums (kept on the device: one read at the end), steps and images."""

    KEYS = ("loss", "loss_ssl", "loss_sl")

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = self.images = 0

    def add(self, losses: dict[str, torch.Tensor], batch: Batch) -> None:
        for k in self.KEYS:
            if k in losses:
                self.sums[k] = self.sums.get(k, 0.0) + losses[k].detach().float()
        self.steps += 1
        self.images += len(batch.x)

    def means(self, phase: str, epoch: int) -> dict[str, float]:
        """Mean losses of the epoch (the epoch's one loss read).

        Raises:
            NonFiniteLossError: a mean is NaN or infinite.
        """
        totals = host(torch.stack(list(self.sums.values()))).tolist()
        means = {k: v / self.steps for k, v in zip(self.sums, totals, strict=True)}
        if not all(math.isfinite(v) for v in means.values()):
            raise NonFiniteLossError(
                f"non-finite loss in phase {phase!r}, epoch {epoch}: "
                f"{means}; lower the learning rate or check the data"
            )
        return means


class Trainer:
    """Holds one run's state; `run()` below is the public entry point."""

    # SSL epochs skip validation: the classifier has had no gradient yet, so the number would
    # be noise that costs a full pass. Tests switch it on to show the skip changes no result.
    _validate_ssl = False

    def __init__(
        self, config: TrialConfig, rt: Runtime, step_costs: dict[str, float] | None = None
    ) -> None:
        self.config, self.rt = config, rt
        self.step_costs = step_costs  # seconds per step of each kind (trainers/calibrate.py)
        self.step_counts: dict[str, int] = {}  # steps taken of each kind, for the above
        missing = config_step_kinds(config) - set(step_costs or {})
        if step_costs is not None and missing:
            raise SetupError(f"the step-cost calibration has no cost for step kind(s) "
                             f"{sorted(missing)}; it has {sorted(step_costs)}")  # fmt: skip
        torch.manual_seed(config.seed)
        try:
            self.splits = s = load_splits(config, rt.device)
            self.model = model_for(config, s.num_classes, s.image_size, s.in_chans)
            check_accel(config.sl_accel, len(s.train_x), config.sl_skip_fraction)
        except ValueError as e:
            raise SetupError(str(e)) from e
        if config.mask_ratio is not None:
            self.model.mask_ratio = config.mask_ratio
        self.model.mix_pass, self.model.mix_mask_ratio = config.mix_pass, config.mix_mask_ratio
        self.model.ssl_pass = config.ssl_pass
        self.model.to(rt.device).train()
        self.data = BatchSource(s, config.batch_size, torch.Generator().manual_seed(config.seed))
        self.phases = epoch_phases(plan_for(config))
        self.epoch = 0  # epochs completed
        self.latency_s = 0.0
        self.gflops = 0.0
        self.step_gflops: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []
        self.reused_epochs, self.reused_latency_s = 0, 0.0  # SSL epochs taken from the cache
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        self.mixer = None  # mixTrain input mixing of the SL phase (trainers/accel.py)
        if config.sl_accel != "none":
            self.mixer = InputMixer(
                config.sl_accel,
                len(s.train_x),
                config.sl_accel_ratio,
                config.sl_skip_fraction,
                device=rt.device,
            )

    def ssl_schedule_epochs(self) -> int:
        """Epochs the SSL cosine spans: this run's SSL phase, or (`budget`) all `epochs_ssl`,
        cut at the MIX boundary, so every `e_mix` shares one prefix."""
        if self.config.ssl_schedule == "budget":
            return self.config.effective_epochs_ssl
        return self.phases.count("ssl")

    def segment_steps(self, segment: str) -> int:
        if segment == "ssl":
            return self.ssl_schedule_epochs() * self.data.steps("ssl")
        kinds = [p for p in self.phases if (p == "ssl") == (segment == "ssl")]
        return sum(self.data.steps(k) for k in kinds)

    def start_segment(self, phase: str) -> None:
        segment = "ssl" if phase == "ssl" else "sup"
        self.optimizer, self.scheduler = make_optimizer(
            self.model, self.config, segment, self.segment_steps(segment)
        )

    def mix_step_offset(self) -> int:
        return sum(self.data.steps("mix") for p in self.phases[: self.epoch] if p == "mix")

    def batches(self, phase: str) -> Iterator[Batch]:
        if phase == "sl" and self.mixer is not None:
            return mixed_batches(self.data, self.mixer, self.model.feature_grid)
        batches = self.data.epoch(phase, self.config.lam)
        if phase != "ssl" and self.config.mixup_alpha > 0:  # supervised batches (SL and MIX)
            mixup = SeededMixup(self.config.mixup_alpha, self.splits.num_classes, self.data.g)
            return with_mixup(batches, mixup)
        return batches

    def planned_steps_done(self) -> int:
        """Scheduler steps a no-mixing run would have taken by the end of this epoch."""
        segment = [p for p in self.phases[: self.epoch + 1] if p != "ssl"]
        return sum(self.data.steps(p) for p in segment)

    def train_epoch(self, phase: str) -> dict[str, float]:
        """One epoch of `phase`; returns mean losses and the epoch's training time.

        One job per block, as MAE's `train_one_epoch`: the clock times the epoch (less the FLOP
        probe), each step trains, then records what mixTrain and the step-cost pricing need,
        then adds to the epoch's sums; the LR rewind and the means close the epoch.
        """
        alpha, tally = self.alpha_schedule(phase), EpochTally()
        clock = EpochClock(self.rt.device)
        for i, batch in enumerate(self.batches(phase)):
            if phase not in self.step_gflops:  # counted untimed, on a copy (see steps.py)
                with clock.paused():
                    self.probe_flops(phase, batch)
            losses = self.train_step(phase, batch, alpha(i))
            self.record_step(phase, batch, losses)
            tally.add(losses, batch)
        self.rewind_lr(phase)
        elapsed = clock.stop()
        means = tally.means(phase, self.epoch + 1)
        self.gflops += self.step_gflops[phase] * tally.images
        out = {**means, "train_s": elapsed, "images": tally.images}
        if phase == "sl" and self.mixer is not None:
            out["mixed_fraction"] = self.mixer.mixed_fraction
            self.mixer.end_epoch()
        return out

    def alpha_schedule(self, phase: str) -> Callable[[int], float]:
        """The SSL loss weight of the epoch's `i`-th step: annealed over the MIX phase, else 0."""
        if phase != "mix":
            return lambda i: 0.0
        c = self.config
        total = self.phases.count("mix") * self.data.steps("mix")
        offset = self.mix_step_offset()
        return lambda i: alpha_at(c.alpha, c.anneal, offset + i, total)

    def probe_flops(self, phase: str, batch: Batch) -> None:
        """Count the FLOPs per image of one step of `phase` (once per phase, on a copy)."""
        gflops = count_step_gflops(self.model, phase, batch, self.rt.autocast)
        self.step_gflops[phase] = gflops / len(batch.x)

    def train_step(self, phase: str, batch: Batch, alpha: float) -> dict[str, torch.Tensor]:
        """Forward, backward, optimiser and LR scheduler step; returns the step's losses."""
        with self.rt.autocast():
            losses = step_loss(self.model, phase, batch, alpha)
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        self.optimizer.step()
        self.scheduler.step()
        return losses

    def record_step(self, phase: str, batch: Batch, losses: dict[str, torch.Tensor]) -> None:
        """What a step leaves behind: mixTrain's per-item losses, and the step counted by kind
        (priced by `step_costs`)."""
        if batch.items is not None:
            it = batch.items
            self.mixer.record(
                it.a, it.b, losses["item_loss_a"], losses["item_loss_b"], losses["correct_a"]
            )
        mode = batch.mode if batch.items is not None else None
        kind = step_kind(phase, self.model.mix_pass, mode)
        self.step_counts[kind] = self.step_counts.get(kind, 0) + 1

    def rewind_lr(self, phase: str) -> None:
        """A mixed epoch has fewer (or, keeping its last partial batch, one more) steps than
        planned: put the LR schedule back where a run without mixing would be."""
        if phase == "sl" and self.mixer is not None:
            self.scheduler.last_epoch = self.planned_steps_done() - 1
            self.scheduler.step()

    def run_epoch(self) -> dict[str, Any]:
        phase = self.phases[self.epoch]
        if self.epoch == 0 or self.phases[self.epoch - 1] == "ssl" and phase != "ssl":
            self.start_segment(phase)
        out = self.train_epoch(phase)
        self.latency_s += out["train_s"]
        self.epoch += 1
        s, bs = self.splits, self.config.eval_batch_size
        validate = phase != "ssl" or self._validate_ssl
        metrics = {
            "epoch": self.epoch,
            "phase": phase,
            "loss_ssl": out.get("loss_ssl"),
            "loss_sl": out.get("loss_sl"),
            "val_accuracy": accuracy(self.model, s.val_x, s.val_y, self.rt, s, bs)
            if validate
            else None,
            "train_latency_s": self.latency_s,
            "train_gflops": self.gflops,
            "images_per_s": out["images"] / max(out["train_s"], 1e-9),
            "compute_s": self.latency_s - self.reused_latency_s,
            "ssl_epochs_reused": self.reused_epochs,
        }
        if self.mixer is not None:
            metrics["mixed_fraction"] = out.get("mixed_fraction")
        if self.step_costs is not None:  # cumulative, like train_latency_s
            metrics["calibrated_latency_s"] = calibrated_seconds(self.step_counts, self.step_costs)
        if self.epoch == len(self.phases):
            metrics["test_accuracy"] = accuracy(self.model, s.test_x, s.test_y, self.rt, s, bs)
        self.history.append(metrics)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "latency_s": self.latency_s,
            "gflops": self.gflops,
            "step_gflops": dict(self.step_gflops),
            "step_counts": dict(self.step_counts),
            "history": list(self.history),
            "reused": {"epochs": self.reused_epochs, "latency_s": self.reused_latency_s},
            "mixer": self.mixer.state_dict() if self.mixer is not None else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": cuda_rng_state(self.rt.device),
                "data": self.data.g.get_state(),
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"checkpoint version {state.get('version')} != {STATE_VERSION}")
        if not same_recipe(state["config"], self.config.to_dict()):
            raise ValueError("checkpoint was written by a different config; refusing to resume")
        self.model.load_state_dict(state["model"])
        self.epoch = state["epoch"]
        self.latency_s, self.gflops = state["latency_s"], state["gflops"]
        self.step_gflops = dict(state["step_gflops"])
        self.step_counts = dict(state["step_counts"])
        self.history = list(state["history"])
        reused = state["reused"]
        self.reused_epochs, self.reused_latency_s = reused["epochs"], reused["latency_s"]
        if self.mixer is not None:
            self.mixer.load_state_dict(state["mixer"])
        if 0 < self.epoch:
            self.start_segment(self.phases[self.epoch - 1])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        set_cuda_rng_state(self.rt.device, state["rng"]["cuda"])
        self.data.g.set_state(state["rng"]["data"])

    def load_ssl_prefix(self, epoch: int, state: dict[str, Any]) -> None:
        """Continue from another run's state after its SSL epoch `epoch` (same SSL key).

        The inherited epochs keep their recorded latency and FLOPs (the recipe's cost), but
        count as reused, not as this run's compute.
        """
        own = {"config": self.config.to_dict()}  # the key vouches for every SSL setting
        own["mixer"] = self.mixer.state_dict() if self.mixer is not None else None
        self.load_state_dict({**state, **own})
        self.reused_epochs, self.reused_latency_s = epoch, self.latency_s
        self.history = [
            {**row, "compute_s": 0.0, "ssl_epochs_reused": epoch} for row in self.history
        ]

    @property
    def ssl_key(self) -> str:
        return ssl_key(self.config, self.rt, self.ssl_schedule_epochs())


def reuse_ssl_prefix(trainer: Trainer, cache: SSLCache, report: Report) -> None:
    """Load the deepest cached SSL epoch of the trainer's plan and report the inherited rows."""
    found = cache.deepest(trainer.ssl_key, trainer.phases.count("ssl"))
    if found is None:
        return
    trainer.load_ssl_prefix(*found)
    state = trainer.state_dict()
    for row in trainer.history:  # the run's record stays complete: one row per planned epoch
        report(row, state)


def replay_rows(trainer: Trainer, after: int, report: Report) -> None:
    """Report again the rows of a restored trainer's history after epoch `after`: the caller's
    record lost them (it kept an older epoch than the checkpoint holds). The last row carries
    the state, so the caller's newest checkpoint is this one again."""
    rows = [row for row in trainer.history if row["epoch"] > after]
    for i, row in enumerate(rows):
        report(row, trainer.state_dict() if i == len(rows) - 1 else None)


def checkpoint_due(config: TrialConfig, epoch: int, total: int, since_last_s: float) -> bool:
    """Checkpoint after `epoch` (1-based)? Every `checkpoint_every` epochs, when
    `checkpoint_minutes` have passed since the last one, and always after the last epoch.

    A paper-scale epoch is 17-35 steps but its checkpoint 70-150 MB: writing one per epoch
    would cost terabytes per search."""
    if epoch >= total or epoch % config.checkpoint_every == 0:
        return True
    return 0 < config.checkpoint_minutes * 60 <= since_last_s


def run(
    config: TrialConfig,
    report: Report,
    checkpoint: dict[str, Any] | None = None,
    step_costs: dict[str, float] | None = None,
    ssl_cache: SSLCache | None = None,
    recorded: int | None = None,
) -> dict[str, Any]:
    """Train one run of `config`, calling `report(metrics, state)` after every epoch.

    `state` is a checkpoint (a dict for `torch.save`), or None on epochs the checkpoint cadence
    skips (`checkpoint_every`, `checkpoint_minutes`; the last epoch always has one); passing it
    back as `checkpoint` resumes exactly after that epoch. `recorded`, with a checkpoint: the
    last epoch the caller's record holds, when that is older than the checkpoint (the rows
    after it are reported again first). Returns the last epoch's metrics, which include
    `test_accuracy`.
    With `step_costs` (seconds per step kind, `trainers.calibrate`) every epoch also reports
    `calibrated_latency_s`. With `ssl_cache`, a run without a checkpoint starts from the
    deepest cached state of its SSL prefix (reporting the inherited epochs' rows first), and
    stores each SSL epoch it runs.
    """
    try:
        rt = resolve_runtime(config)
    except ValueError as e:
        raise SetupError(str(e)) from e
    trainer = Trainer(config, rt, step_costs)
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint)
        if recorded is not None:
            replay_rows(trainer, recorded, report)
    elif ssl_cache is not None:
        reuse_ssl_prefix(trainer, ssl_cache, report)
    saved = time.monotonic()
    while trainer.epoch < len(trainer.phases):
        metrics = trainer.run_epoch()
        due = checkpoint_due(config, trainer.epoch, len(trainer.phases), time.monotonic() - saved)
        caching = ssl_cache is not None and metrics["phase"] == "ssl"
        state = trainer.state_dict() if due or caching else None
        if caching:
            ssl_cache.store(trainer.ssl_key, trainer.epoch, state)
        report(metrics, state if due else None)
        saved = time.monotonic() if due else saved
    return trainer.history[-1] if trainer.history else {}
