"""TrialConfig: the one frozen description of a training run.

Built once by `TrialConfig.from_dict`, which rejects unknown keys and out-of-range values with a
message naming the field. Nothing below the CLI reads YAML, argv or environment variables.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

PIPELINES = ("mixtraining", "ssl_sl", "sl")
ANNEALS = ("none", "linear", "cosine")
PRECISIONS = ("auto", "fp32", "bf16")
MIX_PASSES = ("full", "masked")
SL_ACCELS = ("none", "mixup", "cutmix", "skip")
DEVICES = ("auto", "cpu", "cuda")
SSL_SOURCES_FIXED = ("same", "unlabeled")
SSL_SCHEDULES = ("phase", "budget")

# Paper Tables 12-13: base learning rates at batch 256 (scaled linearly with the batch size).
PAPER_LR_SSL = {"vit": 1.5e-4, "resnet": 1e-4}
PAPER_LR_SL = 1e-3


class ConfigError(ValueError):
    """A setting is unknown or out of range; the message names the field and what is allowed."""


@dataclass(frozen=True)
class TrialConfig:
    """Every setting of one run. Defaults are the CPU default (vit_micro on Fashion-MNIST).

    Learning rates are *base* rates at batch 256; the rate used is `lr * batch_size / 256`
    (the linear scaling rule of MAE and the paper). `lr_ssl = None` means the paper's default
    for the model family (1.5e-4 ViT, 1e-4 ResNet). Warm-up is a fraction of each optimiser
    segment's steps so it scales with the budget (paper: 20 of 400 SSL epochs, 5 of 100 SL).
    """

    # data
    model: str = "vit_micro"
    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    val_fraction: float = 0.1
    labeled_fraction: float = 0.1
    ssl_source: str = "same"
    label_noise: float = 0.0
    # pipeline (paper Algorithm 1)
    pipeline: str = "mixtraining"
    epochs_ssl: int = 6
    epochs_sl: int = 6
    alpha: float = 0.5
    rho: float = 0.5
    lam: float = 0.5
    anneal: str = "none"
    mask_ratio: float | None = None
    mix_pass: str = "full"
    mix_mask_ratio: float | None = None
    # mixTrain input mixing of the SL phase (trainers/accel.py)
    sl_accel: str = "none"
    sl_accel_ratio: float = 0.5
    sl_skip_fraction: float = 0.25
    # optimisation (paper Tables 12-13; AdamW)
    batch_size: int = 64
    lr_ssl: float | None = None
    lr_sl: float = PAPER_LR_SL
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_ssl: float = 0.05
    warmup_sl: float = 0.05
    # execution
    precision: str = "auto"
    device: str = "auto"
    num_threads: int = 0
    eval_batch_size: int = 256
    seed: int = 0
    # SSL learning-rate cosine over this run's SSL phase (`phase`), or over all `epochs_ssl`
    # epochs cut at the MIX boundary (`budget`: every e_mix shares one SSL prefix)
    ssl_schedule: str = "phase"

    def __post_init__(self) -> None:
        if self.lr_ssl is None:
            family = "resnet" if self.model.startswith("resnet") else "vit"
            object.__setattr__(self, "lr_ssl", PAPER_LR_SSL[family])
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        _validate(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialConfig:
        """Build a config from plain values (YAML, JSON, --set), rejecting unknown keys."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(sorted(names))}"
            )
        typed = {k: _coerce(k, v) for k, v in values.items()}
        return cls(**typed)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-friendly values; `from_dict(to_dict())` gives an equal config."""
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out

    def replace(self, **changes: Any) -> TrialConfig:
        return TrialConfig.from_dict({**self.to_dict(), **changes})

    @property
    def effective_rho(self) -> float:
        """The baselines are the same code: SSL+SL is rho = 0, SL has no SSL epochs at all."""
        return self.rho if self.pipeline == "mixtraining" else 0.0

    @property
    def effective_epochs_ssl(self) -> int:
        return 0 if self.pipeline == "sl" else self.epochs_ssl


_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TrialConfig)}


def _coerce(name: str, value: Any) -> Any:
    """Check a raw value's type against the field's; accept ints for floats, lists for tuples."""
    kind = _FIELD_TYPES[name]
    optional = "None" in kind
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name}: a value is required ({kind})")
    base = kind.replace(" | None", "")
    if base == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if base == "str" and isinstance(value, str):
        return value
    if base.startswith("tuple") and isinstance(value, (list, tuple)) and len(value) == 2:
        return tuple(_coerce_number(name, v) for v in value)
    raise ConfigError(f"{name}: expected {base}, got {value!r}")


def _coerce_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name}: expected numbers, got {value!r}")
    return float(value)


def _check(ok: bool, name: str, allowed: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{name}: {value!r} is not allowed; expected {allowed}")


def _validate(c: TrialConfig) -> None:
    # Imported here: the registries live with the code that implements them.
    from trainers.data import DATASETS
    from trainers.models import MODELS

    _check(c.model in MODELS, "model", f"one of {', '.join(MODELS)}", c.model)
    _check(c.dataset in DATASETS, "dataset", f"one of {', '.join(DATASETS)}", c.dataset)
    ssl_ok = c.ssl_source in SSL_SOURCES_FIXED or c.ssl_source in DATASETS
    _check(
        ssl_ok, "ssl_source", f"same, unlabeled or a dataset ({', '.join(DATASETS)})", c.ssl_source
    )
    _check(c.pipeline in PIPELINES, "pipeline", f"one of {', '.join(PIPELINES)}", c.pipeline)
    _check(c.anneal in ANNEALS, "anneal", f"one of {', '.join(ANNEALS)}", c.anneal)
    _check(c.precision in PRECISIONS, "precision", f"one of {', '.join(PRECISIONS)}", c.precision)
    _check(c.device in DEVICES, "device", f"one of {', '.join(DEVICES)}", c.device)
    _check(0.0 < c.val_fraction < 1.0, "val_fraction", "a number in (0, 1)", c.val_fraction)
    _check(
        0.0 < c.labeled_fraction <= 1.0,
        "labeled_fraction",
        "a number in (0, 1]",
        c.labeled_fraction,
    )
    _check(0.0 <= c.label_noise < 1.0, "label_noise", "a number in [0, 1)", c.label_noise)
    _check(c.epochs_ssl >= 0, "epochs_ssl", "an integer >= 0", c.epochs_ssl)
    _check(c.epochs_sl >= 1, "epochs_sl", "an integer >= 1", c.epochs_sl)
    _check(0.0 < c.alpha < 1.0, "alpha", "a number in (0, 1)", c.alpha)
    _check(0.0 <= c.rho <= 1.0, "rho", "a number in [0, 1]", c.rho)
    _check(0.0 <= c.lam <= 1.0, "lam", "a number in [0, 1]", c.lam)
    if c.mask_ratio is not None:
        _check(
            not c.model.startswith("resnet"),
            "mask_ratio",
            "null for ResNet models (a plain autoencoder masks nothing)",
            c.mask_ratio,
        )
        _check(0.0 < c.mask_ratio < 1.0, "mask_ratio", "a number in (0, 1) or null", c.mask_ratio)
    _check(c.mix_pass in MIX_PASSES, "mix_pass", f"one of {', '.join(MIX_PASSES)}", c.mix_pass)
    if c.model.startswith("resnet"):  # a feature map has no tokens to leave out of the encoder
        _check(
            c.mix_pass == "full",
            "mix_pass",
            "full for ResNet models (masked needs a ViT)",
            c.mix_pass,
        )
        _check(
            c.mix_mask_ratio is None, "mix_mask_ratio", "null for ResNet models", c.mix_mask_ratio
        )
    if c.mix_mask_ratio is not None:
        _check(
            0.0 < c.mix_mask_ratio < 1.0,
            "mix_mask_ratio",
            "a number in (0, 1) or null",
            c.mix_mask_ratio,
        )
    _check(c.sl_accel in SL_ACCELS, "sl_accel", f"one of {', '.join(SL_ACCELS)}", c.sl_accel)
    _check(0.0 < c.sl_accel_ratio < 1.0, "sl_accel_ratio", "a number in (0, 1)", c.sl_accel_ratio)
    _check(
        0.0 <= c.sl_skip_fraction < 1.0,
        "sl_skip_fraction",
        "a number in [0, 1)",
        c.sl_skip_fraction,
    )
    _check(c.batch_size >= 1, "batch_size", "an integer >= 1", c.batch_size)
    _check(c.eval_batch_size >= 1, "eval_batch_size", "an integer >= 1", c.eval_batch_size)
    for name in ("lr_ssl", "lr_sl"):
        value = getattr(c, name)
        _check(math.isfinite(value) and value > 0, name, "a positive number", value)
    _check(c.weight_decay >= 0, "weight_decay", "a number >= 0", c.weight_decay)
    _check(all(0.0 <= b < 1.0 for b in c.betas), "betas", "two numbers in [0, 1)", c.betas)
    for name in ("warmup_ssl", "warmup_sl"):
        _check(0.0 <= getattr(c, name) < 1.0, name, "a fraction in [0, 1)", getattr(c, name))
    _check(c.num_threads >= 0, "num_threads", "an integer >= 0 (0 = all CPUs given)", c.num_threads)
    _check(
        c.ssl_schedule in SSL_SCHEDULES,
        "ssl_schedule",
        f"one of {', '.join(SSL_SCHEDULES)}",
        c.ssl_schedule,
    )
