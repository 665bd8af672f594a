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
SSL_SOURCES_FIXED = ("same", "unlabeled", "all")
SSL_PASSES = ("masked", "full")
SSL_SCHEDULES = ("phase", "budget")

# Integer ranges. Seeds feed torch.manual_seed (which takes up to 2**64 - 1) and numpy's
# default_rng (which takes no negative seed). Counts stay below 2**31 so that torch (int32
# indices on some kernels) and the arithmetic on them never overflow.
SEED_MAX = 2**64 - 1
COUNT_MAX = 2**31 - 1
IMAGE_SIZE_MAX = 1024  # a side above this is a typo: one 1024 px RGB image is 3 MB

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
    segment's steps so it scales with the budget: the paper's 20 (SSL) and 5 (SL) warm-up epochs
    of its 100 + 100 epoch runs are `warmup_ssl = 0.2`, `warmup_sl = 0.05`. MixTraining's SSL
    segment is `epochs_ssl - e_mix` epochs long, and its warm-up is that fraction of *its* steps
    (docs/config.md, "Warm-up").
    """

    # data
    model: str = "vit_micro"  # a preset, or timm/<name> (docs/models.md)
    # timm models only (presets choose their own): the ViT patch side (None: the model's own)
    # and the SSL decoder's width, depth and heads (None: the defaults in docs/models.md)
    patch_size: int | None = None
    decoder_width: int | None = None
    decoder_depth: int | None = None
    decoder_heads: int | None = None
    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    unlabeled_dir: str | None = None  # dataset "folder": images for SSL (docs/data.md)
    image_size: int | None = None  # resize (shorter side, centre crop) when prepared
    test_fraction: float = 0.1  # dataset "folder" without test/: the share held out
    data_cache: str | None = None  # where prepared datasets live (None: ~/.cache/tune-app/data)
    val_fraction: float = 0.1
    labeled_fraction: float = 0.1
    ssl_source: str = "same"
    unlabeled_fraction: float = 1.0  # share of the unlabelled images SSL keeps (seeded)
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
    checkpoint_every: int = 1  # epochs between checkpoints; the last epoch always checkpoints
    checkpoint_minutes: float = 0.0  # also checkpoint once this long has passed; 0 = off
    seed: int = 0
    # the papers' options beyond Algorithm 1 (docs/config.md)
    ssl_pass: str = "masked"
    mixup_alpha: float = 0.0
    betas_ssl: tuple[float, float] | None = None
    betas_sl: tuple[float, float] | None = None
    weight_decay_ssl: float | None = None
    weight_decay_sl: float | None = None
    # SSL learning-rate cosine over this run's SSL phase (`phase`), or over all `epochs_ssl`
    # epochs cut at the MIX boundary (`budget`: every e_mix shares one SSL prefix)
    ssl_schedule: str = "phase"

    def __post_init__(self) -> None:
        if self.lr_ssl is None:
            family = "resnet" if _family(self.model) == "cnn" else "vit"
            object.__setattr__(self, "lr_ssl", PAPER_LR_SSL[family])
        for name in BETAS_FIELDS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(float(b) for b in value))
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
        for name in BETAS_FIELDS:
            out[name] = None if out[name] is None else list(out[name])
        return out

    def replace(self, **changes: Any) -> TrialConfig:
        return TrialConfig.from_dict({**self.to_dict(), **changes})

    def segment_betas(self, segment: str) -> tuple[float, float]:
        """AdamW betas of optimiser segment `ssl` or `sup`: the segment's own, else `betas`."""
        own = self.betas_ssl if segment == "ssl" else self.betas_sl
        return self.betas if own is None else own

    def segment_weight_decay(self, segment: str) -> float:
        """Weight decay of segment `ssl` or `sup`: the segment's own, else `weight_decay`."""
        own = self.weight_decay_ssl if segment == "ssl" else self.weight_decay_sl
        return self.weight_decay if own is None else own

    @property
    def effective_rho(self) -> float:
        """The baselines are the same code: SSL+SL is rho = 0, SL has no SSL epochs at all."""
        return self.rho if self.pipeline == "mixtraining" else 0.0

    @property
    def effective_epochs_ssl(self) -> int:
        return 0 if self.pipeline == "sl" else self.epochs_ssl


_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TrialConfig)}
BETAS_FIELDS = ("betas", "betas_ssl", "betas_sl")


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
    if base.startswith("tuple") and isinstance(value, str) and value.count(",") == 1:
        # "0.9,0.999": the form a search space's `values:` can list (Optuna's categorical
        # choices must be scalars), also accepted from --set
        return tuple(_parse_number(name, part) for part in value.split(","))
    if base.startswith("tuple") and isinstance(value, (list, tuple)) and len(value) == 2:
        return tuple(_coerce_number(name, v) for v in value)
    if base.startswith("tuple"):
        raise ConfigError(f"{name}: expected two numbers, [0.9, 0.95] or '0.9,0.95'; got {value!r}")
    raise ConfigError(f"{name}: expected {base}, got {value!r}")


def _parse_number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name}: expected two numbers like '0.9,0.95', got {text!r}") from None


def _coerce_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name}: expected numbers, got {value!r}")
    return float(value)


def _check(ok: bool, name: str, allowed: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{name}: {value!r} is not allowed; expected {allowed}")


def _check_count(c: TrialConfig, name: str, minimum: int, allowed: str = "") -> None:
    value = getattr(c, name)
    ok = minimum <= value <= COUNT_MAX
    _check(ok, name, allowed or f"an integer in [{minimum}, {COUNT_MAX}]", value)


def _check_numbers(c: TrialConfig) -> None:
    """Every float field is finite (NaN slips through range checks; inf through `>= 0`)."""
    for f in dataclasses.fields(c):
        value = getattr(c, f.name)
        values = value if isinstance(value, tuple) else (value,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise ConfigError(f"{f.name}: {value!r} is not allowed; expected a finite number")


def _family(model: str) -> str:
    """ "vit" or "cnn"; ConfigError naming the model when it is unknown or unsupported."""
    from trainers.models import model_family  # the registry lives with the models

    if not isinstance(model, str):
        raise ConfigError(f"model: {model!r} is not allowed; expected a preset or timm/<name>")
    try:
        return model_family(model)
    except ValueError as e:
        raise ConfigError(f"model: {e}") from None


def _validate(c: TrialConfig) -> None:
    # Imported here: the registries live with the code that implements them.
    from trainers.data import BUILTIN_DATASETS, DATASETS

    _check_numbers(c)
    cnn = _family(c.model) == "cnn"
    timm_model = c.model.startswith("timm/")
    for name in ("patch_size", "decoder_width", "decoder_depth", "decoder_heads"):
        value = getattr(c, name)
        if value is None:
            continue
        _check(timm_model, name, "null for the presets (they size their own)", value)
        ok = isinstance(value, int) and 1 <= value <= IMAGE_SIZE_MAX
        _check(ok, name, f"an integer in [1, {IMAGE_SIZE_MAX}] or null", value)
    for name in ("patch_size", "decoder_depth", "decoder_heads"):
        value = getattr(c, name)
        _check(value is None or not cnn, name, "null for a CNN (the autoencoder path)", value)
    _check(c.dataset in DATASETS, "dataset", f"one of {', '.join(DATASETS)}", c.dataset)
    ssl_ok = c.ssl_source in SSL_SOURCES_FIXED or c.ssl_source in BUILTIN_DATASETS
    allowed = f"same, unlabeled, all or a dataset ({', '.join(BUILTIN_DATASETS)})"
    _check(ssl_ok, "ssl_source", allowed, c.ssl_source)
    _check(
        c.unlabeled_dir is None or c.dataset == "folder",
        "unlabeled_dir",
        "null unless dataset is folder",
        c.unlabeled_dir,
    )
    if c.image_size is not None:
        ok = isinstance(c.image_size, int) and 4 <= c.image_size <= IMAGE_SIZE_MAX
        _check(ok, "image_size", f"an integer in [4, {IMAGE_SIZE_MAX}] or null", c.image_size)
    _check(0.0 < c.test_fraction < 1.0, "test_fraction", "a number in (0, 1)", c.test_fraction)
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
    _check(
        0.0 < c.unlabeled_fraction <= 1.0,
        "unlabeled_fraction",
        "a number in (0, 1]",
        c.unlabeled_fraction,
    )
    _check(0.0 <= c.label_noise < 1.0, "label_noise", "a number in [0, 1)", c.label_noise)
    _check_count(c, "epochs_ssl", 0)
    _check_count(c, "epochs_sl", 1)
    _check(0.0 < c.alpha < 1.0, "alpha", "a number in (0, 1)", c.alpha)
    _check(0.0 <= c.rho <= 1.0, "rho", "a number in [0, 1]", c.rho)
    _check(0.0 <= c.lam <= 1.0, "lam", "a number in [0, 1]", c.lam)
    if c.mask_ratio is not None:
        _check(
            not cnn,
            "mask_ratio",
            "null for ResNet models and other CNNs (a plain autoencoder masks nothing)",
            c.mask_ratio,
        )
        _check(0.0 < c.mask_ratio < 1.0, "mask_ratio", "a number in (0, 1) or null", c.mask_ratio)
    _check(c.mix_pass in MIX_PASSES, "mix_pass", f"one of {', '.join(MIX_PASSES)}", c.mix_pass)
    if cnn:  # a feature map has no tokens to leave out of the encoder
        _check(
            c.mix_pass == "full",
            "mix_pass",
            "full for ResNet models and other CNNs (masked needs a ViT)",
            c.mix_pass,
        )
        _check(
            c.mix_mask_ratio is None,
            "mix_mask_ratio",
            "null for ResNet models and other CNNs",
            c.mix_mask_ratio,
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
    _check_count(c, "batch_size", 1)
    _check_count(c, "eval_batch_size", 1)
    _check_count(c, "checkpoint_every", 1)
    _check(
        math.isfinite(c.checkpoint_minutes) and c.checkpoint_minutes >= 0,
        "checkpoint_minutes",
        "a number >= 0 (0 = off)",
        c.checkpoint_minutes,
    )
    for name in ("lr_ssl", "lr_sl"):
        value = getattr(c, name)
        _check(math.isfinite(value) and value > 0, name, "a positive number", value)
    _check(c.weight_decay >= 0, "weight_decay", "a number >= 0", c.weight_decay)
    _check(all(0.0 <= b < 1.0 for b in c.betas), "betas", "two numbers in [0, 1)", c.betas)
    for name in ("warmup_ssl", "warmup_sl"):
        _check(0.0 <= getattr(c, name) < 1.0, name, "a fraction in [0, 1)", getattr(c, name))
    _check_count(c, "num_threads", 0, f"an integer in [0, {COUNT_MAX}] (0 = all CPUs given)")
    _check(0 <= c.seed <= SEED_MAX, "seed", f"an integer in [0, 2**64 - 1 = {SEED_MAX}]", c.seed)
    _check(
        c.ssl_schedule in SSL_SCHEDULES,
        "ssl_schedule",
        f"one of {', '.join(SSL_SCHEDULES)}",
        c.ssl_schedule,
    )
    _validate_paper_options(c)


def _validate_paper_options(c: TrialConfig) -> None:
    """ssl_pass, mixup_alpha and the per-segment AdamW settings."""
    _check(c.ssl_pass in SSL_PASSES, "ssl_pass", f"one of {', '.join(SSL_PASSES)}", c.ssl_pass)
    if _family(c.model) == "cnn":  # the autoencoder already encodes every pixel
        _check(
            c.ssl_pass == "masked",
            "ssl_pass",
            "masked for ResNet models and other CNNs (full needs a ViT's tokens)",
            c.ssl_pass,
        )
    ok = math.isfinite(c.mixup_alpha) and c.mixup_alpha >= 0
    _check(ok, "mixup_alpha", "a number >= 0 (0 = no mixup)", c.mixup_alpha)
    if c.mixup_alpha > 0:  # both rewrite the SL batch and its targets
        _check(
            c.sl_accel == "none",
            "mixup_alpha",
            "0 when sl_accel is set (mixTrain's mixing and mixup cannot be combined)",
            c.mixup_alpha,
        )
    for name in ("betas_ssl", "betas_sl"):
        value = getattr(c, name)
        if value is not None:
            ok = len(value) == 2 and all(0.0 <= b < 1.0 for b in value)
            _check(ok, name, "two numbers in [0, 1), or null (= betas)", value)
    for name in ("weight_decay_ssl", "weight_decay_sl"):
        value = getattr(c, name)
        if value is not None:
            ok = math.isfinite(value) and value >= 0
            _check(ok, name, "a number >= 0, or null (= weight_decay)", value)
