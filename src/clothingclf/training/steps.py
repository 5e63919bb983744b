"""The pieces one fit is made of: the learning-rate schedule, the loss, the optimiser, the
validation pass, the head-only stage and the progress output (the weight average is in
:mod:`~clothingclf.training.averaging`).

The schedule is a factor for torch's :class:`~torch.optim.lr_scheduler.LambdaLR` (a linear
warm-up then a cosine to zero, which torch's ``OneCycleLR`` cannot shape: its warm-up
follows the same curve as its decay).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..backbones import ClothingNet
from ..probabilities import TorchRunner, mirror_mean
from ..settings import TrainConfig
from .augment import Views
from .processes import Processes

__all__: list[str] = []

# --------------------------------------------------------------------------- schedule


def lr_factor(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The learning rate of each step as a factor of ``lr`` (for ``LambdaLR``)."""
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(total - 1, round(config.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if config.schedule == "constant":
            return 1.0 if step >= warmup else (step + 1) / (warmup + 1)
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _loss(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, smoothing: float
) -> torch.Tensor:
    """Cross-entropy weighted per image by its class's weight, with label smoothing.

    Without smoothing this equals ``F.cross_entropy(logits, target, weight=weight)``. With
    smoothing it differs on purpose: PyTorch weighs the smoothed part of every image's
    target by all the class weights, which pulls each prediction toward the rare classes
    (weights up to ~12 here). On cached Lite0 features of the shared data, a head trained
    that way reached 75.4 % validation accuracy; weighted per image, 83.0 %.
    """
    losses = F.cross_entropy(logits, target, reduction="none", label_smoothing=smoothing)
    if weight is None:
        return losses.mean()
    weights = weight[target]
    return (losses * weights).sum() / weights.sum()


class Objective:
    """The training loss of one fit, built once: the labels' cross-entropy
    (:func:`_loss`), with a teacher (``fit(teacher=...)``) mixed with the Kullback-Leibler
    divergence to its probabilities at ``distill_temperature`` (Hinton et al. 2015, scaled
    by T² so its gradients keep their size), and with ``logit_adjustment`` tau the logits
    shifted by tau·log(class prior) in both terms (Menon et al., ICLR 2021).

    ``soft`` rows are the teacher's probabilities, softened to the temperature as each
    batch uses them.
    """

    def __init__(
        self,
        config: TrainConfig,
        weight: torch.Tensor | None,
        prior: torch.Tensor | None,
    ) -> None:
        self.weight = weight
        self.smoothing = config.label_smoothing
        self.share = config.distill_weight
        self.temperature = config.distill_temperature
        self.shift = (
            None
            if prior is None or config.logit_adjustment == 0
            else config.logit_adjustment * prior.log()  # class_prior: no class at 0
        )

    def __call__(
        self, logits: torch.Tensor, target: torch.Tensor, soft: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.shift is not None:
            logits = logits + self.shift.to(logits.device)
        hard = _loss(logits, target, self.weight, self.smoothing)
        if soft is None or self.share == 0:
            return hard
        t = self.temperature
        teacher = F.softmax(soft.clamp_min(1e-12).log() / t, dim=1)
        student = F.log_softmax(logits / t, dim=1)
        matched = F.kl_div(student, teacher, reduction="batchmean") * (t * t)
        return self.share * matched + (1.0 - self.share) * hard


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser of ``config``; with AdamW, biases and norms are not decayed."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim <= 1 or name.endswith(".bias") else decay).append(parameter)
    if config.optimizer == "adamw":
        groups = [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=config.lr, betas=(config.momentum, 0.999))
    # The study's SGD decays every parameter alike (weight decay 0 there anyway).
    return torch.optim.SGD(
        [{"params": decay + no_decay, "weight_decay": config.weight_decay}],
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.optimizer == "nesterov",
    )


# --------------------------------------------------------------------------- output


class Printer:
    """What a fit prints: its lines (on ``progress``) and, on a terminal, a progress bar."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = enabled and sys.stderr.isatty()
        self._last = 0.0

    def line(self, text: str) -> None:
        if self.enabled:
            print(text, file=sys.stderr, flush=True)

    def progress(self, label: str, done: int, total: int, loss: float, started: float) -> None:
        if not self.bar:
            return
        now = time.perf_counter()
        if done < total and now - self._last < 0.2:
            return
        self._last = now
        width = 24
        filled = int(width * done / max(1, total))
        rate = done / max(now - started, 1e-9)
        bar = "#" * filled + "-" * (width - filled)
        text = f"\r{label} [{bar}] {done}/{total} loss {loss:.4f} {rate:.1f} img/s"
        print(text, end="" if done < total else "\r", file=sys.stderr, flush=True)
        if done >= total:
            print(" " * len(text), end="\r", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- evaluation


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    real: torch.Tensor,
    views: Views,
    *,
    tta: bool,
    bf16: bool,
    batch_size: int,
    keep: list[torch.Tensor] | None = None,
) -> tuple[float, float, float]:
    """(sum of losses, correct, count) over the real rows of this process's shard, on the
    probabilities ``predict_proba(engine="torch")`` computes (:mod:`clothingclf.probabilities`).

    With ``keep`` (a list), each batch's probabilities are appended to it (on the CPU).
    """
    model.eval()
    loss_sum, correct, count = 0.0, 0.0, 0.0
    device = views.device
    layout = torch.channels_last if views.channels_last else torch.contiguous_format
    run = TorchRunner([model], device, bf16=bf16, layout=layout)
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        target = labels[start : start + batch_size].to(device)
        mask = real[start : start + batch_size].to(device)
        # the mirror images in a pass of their own: validation's memory stays that of a batch
        both = mirror_mean(run, [views.center(chunk)], tta=tta, together=False)
        probabilities = both.to(device, torch.float32)
        if keep is not None:
            keep.append(probabilities.detach().to("cpu", torch.float32))
        losses = F.nll_loss(probabilities.clamp_min(1e-12).log(), target, reduction="none")
        loss_sum += float(losses[mask].sum())
        correct += float((probabilities.argmax(1) == target)[mask].sum())
        count += float(mask.sum())
    return loss_sum, correct, count


@torch.inference_mode()
def _features(
    features: nn.Module,
    images: torch.Tensor,
    views: Views,
    *,
    bf16: bool,
    batch_size: int,
) -> torch.Tensor:
    features.eval()
    out = []
    device = views.device
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out.append(torch.flatten(features(views.center(chunk)), 1).float())
    return torch.cat(out) if out else torch.empty(0)


def train_head(
    model: ClothingNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    views: Views,
    *,
    config: TrainConfig,
    objective: Objective,
    soft: torch.Tensor | None,
    bf16: bool,
    processes: Processes,
    batch_size: int,
) -> tuple[int, float]:
    """Stage one: fit the head on cached features of the frozen backbone.

    Returns the image-passes and the mean training loss of the last epoch.
    """
    # One view per image: a mirrored second view doubles this stage's cost for no gain
    # that the full fine-tune that follows does not give anyway.
    features = _features(model.features, images, views, bf16=bf16, batch_size=batch_size)
    targets = labels.to(views.device)
    teacher = None if soft is None else soft.to(views.device)
    if processes.distributed:
        features, targets = _gathered(features), _gathered(targets)
        teacher = None if teacher is None else _gathered(teacher)
    head = copy.deepcopy(model.head).float()
    optimizer = torch.optim.AdamW(
        head.parameters(), lr=config.head_lr, weight_decay=config.head_weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    steps = config.head_epochs * math.ceil(len(features) / config.head_batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps))
    head.train()
    loss_sum, seen = 0.0, 0
    with torch.enable_grad():
        for _ in range(config.head_epochs):
            order = torch.randperm(len(features), generator=generator).to(views.device)
            loss_sum, seen = 0.0, 0
            for start in range(0, len(order), config.head_batch_size):
                rows = order[start : start + config.head_batch_size]
                taught = None if teacher is None else teacher[rows]
                loss = objective(head(features[rows]), targets[rows], taught)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                scheduler.step()
                loss_sum += float(loss.detach()) * len(rows)
                seen += len(rows)
    model.head.load_state_dict(head.state_dict())
    return len(features), loss_sum / max(seen, 1)


def _gathered(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's rows of ``tensor``, in rank order."""
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor)
    return torch.cat(parts)
