"""A trial's peak GPU memory per phase, estimated from shapes alone (no GPU, no data).

One training step of each phase runs on the `meta` device (shapes, no storage) while autograd's
saved-tensor hooks record what the backward pass keeps alive. The estimate of a phase is

    peak = data on the device + 6 fp32 copies of the parameters + saved activations
           + twice the largest saved tensor + CUDA context

6 copies: weights, gradients, AdamW's two moments, and the FLOP-counting shadow model with its
gradients (`trainers.steps.count_step_gflops`, once per phase). "Twice the largest" stands for
the transient buffers of the backward pass. Attention is traced as a fused (flash/efficient)
kernel, which saves no [N, N] scores. bf16 autocast is emulated: matmul, convolution and
attention inputs are cast to bf16 (so they save bf16 copies), normalisation and losses run in
fp32, everything else at its inputs' dtype, as CUDA autocast does. Allocator fragmentation is
not modelled: a packing should leave `FRAGMENTATION` headroom.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from trainers.config import TrialConfig
from trainers.data import Splits
from trainers.models import model_for
from trainers.steps import Batch, step_loss

GB = 1024**3
CUDA_CONTEXT_BYTES = int(0.5 * GB)  # the CUDA context and cuBLAS/cuDNN workspaces, per process
FRAGMENTATION = 0.10  # headroom a packing keeps above the estimates

_BF16_OPS = {
    F.linear,
    F.conv2d,
    F.conv_transpose2d,
    F.scaled_dot_product_attention,
    torch.matmul,
    torch.bmm,
    torch.addmm,
    torch.baddbmm,
    torch.Tensor.matmul,
    torch.Tensor.__matmul__,
}
_FP32_OPS = {F.layer_norm, F.softmax, F.cross_entropy, F.mse_loss, F.group_norm}


class _FusedAttention(torch.autograd.Function):
    """Shapes of a flash/efficient attention kernel: saves q, k, v, out and the row log-sum-exp,
    never the [N, N] scores (on `meta`, SDPA would run the math path, which saves them)."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        out = q.new_empty(*q.shape[:-1], v.shape[-1])
        lse = q.new_empty(q.shape[:-1], dtype=torch.float32)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:  # noqa: ANN001
        raise NotImplementedError("shape-only stand-in: the estimate runs no backward")


class GpuShapes(TorchFunctionMode):
    """What a CUDA step saves, traced on `meta`: fused attention and, with `bf16`, CUDA-style
    autocast (torch's autocast skips `meta` tensors)."""

    def __init__(self, bf16: bool) -> None:
        super().__init__()
        self.bf16 = bf16

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if self.bf16 and func in _BF16_OPS:
            args, kwargs = _cast((args, kwargs), torch.float32, torch.bfloat16)
        elif self.bf16 and func in _FP32_OPS:
            args, kwargs = _cast((args, kwargs), torch.bfloat16, torch.float32)
        if func is F.scaled_dot_product_attention:
            return _FusedAttention.apply(*args[:3])
        return func(*args, **kwargs)


def _cast(tree: Any, src: torch.dtype, dst: torch.dtype) -> Any:
    from torch.utils._pytree import tree_map

    return tree_map(
        lambda t: t.to(dst) if isinstance(t, torch.Tensor) and t.dtype == src else t, tree
    )


def saved_activation_bytes(step: Callable[[], torch.Tensor], exclude: set[int]) -> tuple[int, int]:
    """(total, largest) bytes of the distinct storages autograd saves during `step()`'s forward.

    `exclude` holds storage ids (parameters) counted elsewhere.
    """
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in exclude:
            seen[key] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(seen.values()), max(seen.values(), default=0)


def phase_peaks(config: TrialConfig, splits: Splits, bf16: bool) -> dict[str, int]:
    """Estimated peak device bytes of one trial in each of its phases (`ssl`, `mix`, `sl`)."""
    model = model_for(config, splits.num_classes, splits.image_size, splits.in_chans)
    if config.mask_ratio is not None:
        model.mask_ratio = config.mask_ratio
    model.mix_pass, model.mix_mask_ratio = config.mix_pass, config.mix_mask_ratio
    model.ssl_pass = config.ssl_pass  # `full`: the SSL step's encoder sees every token
    model = model.to("meta").train()
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    exclude = {p.untyped_storage()._cdata for p in model.parameters()}
    # Every phase a search could reach: rho (how many MIX epochs) is usually searched.
    phases = ("ssl", "mix", "sl") if config.effective_epochs_ssl else ("sl",)
    fixed = data_bytes(splits) + 6 * params + CUDA_CONTEXT_BYTES
    peaks = {}
    for phase in phases:
        batch = meta_batch(config, splits, phase)

        def step(phase: str = phase, batch: Batch = batch) -> torch.Tensor:
            with GpuShapes(bf16):
                return step_loss(model, phase, batch, alpha=0.5)["loss"]

        saved, largest = saved_activation_bytes(step, exclude)
        peaks[phase] = fixed + saved + 2 * largest
    return peaks


def meta_batch(config: TrialConfig, splits: Splits, phase: str) -> Batch:
    """A full training batch of `phase` on `meta` (a composite batch costs the same)."""
    pool = splits.ssl_x if phase == "ssl" and splits.ssl_x is not None else splits.train_x
    n = min(config.batch_size, len(pool))
    x = torch.empty(n, splits.in_chans, splits.image_size, splits.image_size, device="meta")
    y = None if phase == "ssl" else torch.empty(n, dtype=torch.long, device="meta")
    return Batch(x, y)


def data_bytes(splits: Splits) -> int:
    """The uint8 images and labels the trainer keeps on the device (a `Rows` view of a memory
    map stays on the host: only its batches reach the device)."""
    names = ("train_x", "train_y", "val_x", "val_y", "ssl_x")
    tensors = [getattr(splits, k) for k in names]
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def packing_problem(
    peaks: dict[str, int], share: float, gpu_bytes: int, gpu_name: str
) -> str | None:
    """Why `share` of a `gpu_bytes` GPU cannot hold a trial with these phase peaks, or None."""
    phase, peak = max(peaks.items(), key=lambda kv: kv[1])
    need = peak * (1 + FRAGMENTATION)
    given = share * gpu_bytes
    if need <= given:
        return None
    per_gpu = max(1, int(gpu_bytes // need))
    return (
        f"each trial needs about {need / GB:.1f} GB at its peak (phase {phase}: "
        f"{peak / GB:.1f} GB estimated + {FRAGMENTATION:.0%} headroom) but gpu: {share:g} gives "
        f"it {given / GB:.1f} GB of a {gpu_bytes / GB:.1f} GB {gpu_name}; use gpu: "
        f"{1 / per_gpu:.3g} ({per_gpu} per GPU) or a smaller batch_size"
    )
