"""The training loop: recipes, schedules, checkpoints, and several processes.

:func:`train_model` fine-tunes a :class:`~clothingclf.backbones.ClothingNet` on a training
table and picks the best epoch on a validation table. It follows a
:class:`~clothingclf.settings.TrainConfig` (made by
:func:`~clothingclf.settings.resolve_config` from a named recipe) and runs as its
:class:`~clothingclf.settings.RunOptions` say (all declared in :mod:`clothingclf.settings`
and re-exported here). The recipes:

* ``"seed"``: the original study exactly: SGD (lr 0.005, momentum 0.9, no weight decay),
  50 epochs of batch 32 at full size, class-weighted cross-entropy, no schedule, random
  resized crop (scale 0.08-1) and horizontal flip.
* ``"fast"``: the same accuracy with a small fraction of the image-passes: first the new
  head alone on cached features of the frozen backbone (seconds), then all layers for a
  few epochs with AdamW, a one-cycle schedule with warm-up, label smoothing 0.1,
  progressive resizing (small images in early epochs) and flip test-time augmentation in
  validation; and all of it twice, for two networks that see the photos differently (the
  centre square and the whole 3:4 photo), whose probabilities prediction averages
  (``extra_views``). ``docs/performance.rst`` gives the measurements behind each choice.

The data path decodes each photo once (:mod:`clothingclf.cache`) and augments uint8 tensors
in batches (random resized crop and flip of a whole batch in one
:func:`~torch.nn.functional.grid_sample` call). The order of the data in epoch ``e``
depends only on ``seed`` and ``e``, so a run resumed from a checkpoint ends with exactly the
weights of an uninterrupted one.

Under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set) the loop joins the process
group (gloo on CPU, nccl on GPUs), wraps the model in
:class:`~torch.nn.parallel.DistributedDataParallel`, gives each process its own shard of the
images (each decodes only its shard), splits the batch among the processes (``batch_size``
is the global batch, so the schedule is the same for any number of processes), sums the
validation counts over all of them, and lets only rank 0 print and write files.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, cast

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ._distributed import _all_sum, _join_processes, _Processes, _shard
from ._memory import heap_reuse_available, reused_memory, trim_kept_memory
from ._views import (
    _batches,
    _image_size,
    _mix,
    _use_bf16,
    _use_channels_last,
    _Views,
    speed_settings,
)
from .backbones import ClothingNet, Preprocessing
from .cache import build_image_cache
from .checkpoint import CHECKPOINT_FORMAT, atomic_save, read_training_checkpoint
from .exceptions import InvalidParameterError, TrainingDivergedError
from .settings import RECIPES, RunOptions, TrainConfig, resolve_config, resolve_options

__all__ = [
    "RECIPES",
    "RunOptions",
    "TrainConfig",
    "TrainResult",
    "resolve_config",
    "resolve_options",
    "speed_settings",
    "train_model",
]

_P = ParamSpec("_P")


@dataclass
class TrainResult:
    """What :func:`train_model` returns.

    Attributes:
        best_state: Weights of the epoch with the best validation accuracy (the final
            weights when there is no validation set).
        final_state: Weights after the last epoch that ran (their moving average with
            ``ema_decay``).
        history: One dict per epoch: ``epoch`` (0 is the head-only stage), ``train_loss``,
            ``val_loss``, ``val_accuracy`` (NaN without validation), ``lr``, ``seconds``,
            ``image_size``, ``image_passes`` (cumulative).
        best_epoch: The epoch of ``best_state``.
        best_val_accuracy: Its validation accuracy (``None`` without validation).
        final_val_accuracy: The last epoch's validation accuracy (``None`` without).
        image_passes: Training images that went through the backbone, counting each view
            of each image in each epoch (forward-only passes of the head-only stage too).
        interrupted: Training stopped early on ``KeyboardInterrupt``.
        stopped_early: Training stopped early because validation accuracy stalled.
        best_val_probabilities: The class probabilities of the validation images (rows in
            the validation table's order) at the best epoch, or ``None`` (no validation, or
            a distributed run, where each process sees only its shard).
        final_val_probabilities: The same at the last validated epoch.
    """

    best_state: dict[str, torch.Tensor]
    final_state: dict[str, torch.Tensor]
    history: list[dict[str, float]]
    best_epoch: int
    best_val_accuracy: float | None
    final_val_accuracy: float | None
    image_passes: int
    interrupted: bool = False
    stopped_early: bool = False
    seconds: float = field(default=0.0)
    best_val_probabilities: np.ndarray | None = None
    final_val_probabilities: np.ndarray | None = None


# --------------------------------------------------------------------------- schedule


def _lr_factor(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
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


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
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


class _Printer:
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
def _evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    real: torch.Tensor,
    views: _Views,
    *,
    tta: bool,
    bf16: bool,
    batch_size: int,
    keep: list[torch.Tensor] | None = None,
) -> tuple[float, float, float]:
    """(sum of losses, correct, count) over the real rows of this process's shard.

    With ``keep`` (a list), each batch's probabilities are appended to it (on the CPU).
    """
    model.eval()
    loss_sum, correct, count = 0.0, 0.0, 0.0
    device = views.device
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        target = labels[start : start + batch_size].to(device)
        mask = real[start : start + batch_size].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            probabilities = model(views.center(chunk)).float().softmax(1)
            if tta:
                mirrored = model(views.center(chunk, flip=True)).float().softmax(1)
                probabilities = (probabilities + mirrored) / 2
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
    views: _Views,
    *,
    bf16: bool,
    flip: bool,
    batch_size: int,
) -> torch.Tensor:
    features.eval()
    out = []
    device = views.device
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out.append(torch.flatten(features(views.center(chunk, flip=flip)), 1).float())
    return torch.cat(out) if out else torch.empty(0)


# --------------------------------------------------------------------------- averaging


class _Average:
    """An exponential moving average of ``model``'s weights, as a model of its own.

    ``update`` after every optimiser step moves each floating-point entry of the state
    toward the model's by ``1 - d``, with ``d = min(decay, (1 + t) / (10 + t))`` at update
    ``t`` (so the first steps are not drowned by the starting weights); other entries
    (BatchNorm's step counters) are copied. The pairs of tensors are found once: the
    optimiser and ``load_state_dict`` change both models' tensors in place.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.steps = 0
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        theirs_by_name = model.state_dict()
        pairs = [(mine, theirs_by_name[name]) for name, mine in self.model.state_dict().items()]
        self._averages = [mine for mine, theirs in pairs if mine.is_floating_point()]
        self._targets = [theirs for mine, theirs in pairs if mine.is_floating_point()]
        self._copies = [(mine, theirs) for mine, theirs in pairs if not mine.is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        if self._averages:
            torch._foreach_lerp_(self._averages, self._targets, 1.0 - decay)
        for mine, theirs in self._copies:
            mine.copy_(theirs)

    def state(self) -> dict[str, Any]:
        return {"steps": self.steps, "state": _cpu_state(self.model)}

    def load(self, saved: Mapping[str, Any]) -> None:
        self.model.load_state_dict(saved["state"])
        self.steps = int(saved["steps"])


# --------------------------------------------------------------------------- checkpoints


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _rng_state() -> dict[str, Any]:
    np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [
            str(np_state[0]),
            np.asarray(np_state[1]).tolist(),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


#: Settings that shape the schedule and the data order: a resumed run must keep them.
_RESUME_FIELDS = (
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "head_epochs",
    "size_schedule",
    "seed",
    "class_weighted",
    "label_smoothing",
    "image_size",
    "aspect",
    "ema_decay",
    "mixup_alpha",
    "cutmix_alpha",
    "color_jitter",
)


# Settings added after checkpoints were first written, as a checkpoint without them ran:
# these features did not exist, so they were off. (Its image size is not known; it is not
# compared.)
_ADDED_OFF = {
    "ema_decay": 0.0,
    "mixup_alpha": 0.0,
    "cutmix_alpha": 0.0,
    "color_jitter": 0.0,
    "aspect": 1.0,
}


def _check_resume(saved: Mapping[str, Any], config: TrainConfig, path: Path) -> None:
    current = config.to_dict()
    recorded = {**_ADDED_OFF, "image_size": current["image_size"], **saved}
    different = [
        f"{name} (checkpoint {recorded.get(name)!r}, now {current[name]!r})"
        for name in _RESUME_FIELDS
        if recorded.get(name) != current[name]
    ]
    if different:
        raise InvalidParameterError(
            f"Cannot resume from {str(path)!r}: it was trained with other settings: "
            f"{'; '.join(different)}. Resume with the settings of the interrupted run."
        )


# --------------------------------------------------------------------------- the loop


def _reuses_memory(options: RunOptions, device: torch.device) -> bool:
    """``reuse_memory``: "auto" keeps freed memory on the heap when training on the CPU
    (on a GPU the activations are not in the process heap) where glibc allows it."""
    if options.reuse_memory != "auto":
        return options.reuse_memory == "on"
    return device.type == "cpu" and heap_reuse_available()


def _in_reused_memory(train: Callable[_P, TrainResult]) -> Callable[_P, TrainResult]:
    """Run a training function inside ``_memory.reused_memory``, switched by its ``options``
    and ``device`` keyword arguments (keyword-only in :func:`train_model`)."""

    @functools.wraps(train)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> TrainResult:
        options = cast(RunOptions, kwargs.get("options") or RunOptions())
        device = cast(torch.device, kwargs["device"])
        with reused_memory(_reuses_memory(options, device)):
            return train(*args, **kwargs)

    return wrapper


@_in_reused_memory
def train_model(
    model: ClothingNet,
    train: pd.DataFrame,
    val: pd.DataFrame | None,
    *,
    class_weights: Sequence[float] | None,
    preprocessing: Preprocessing,
    config: TrainConfig,
    device: torch.device,
    options: RunOptions | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Fine-tune ``model`` on ``train``, choosing the best epoch on ``val``.

    Args:
        model: The network; trained in place (on return it holds the final weights).
        train: Training rows with columns ``path`` and ``label_id``.
        val: Validation rows (same columns), or ``None`` to train without validation.
        class_weights: One weight per class for the loss (used when
            ``config.class_weighted``); ``None`` weighs classes equally.
        preprocessing: Image size, resize and normalisation of the network.
        config: The settings (:func:`~clothingclf.settings.resolve_config`).
        device: Where to train. On CUDA, batches are copied from pinned memory without
            blocking.
        options: How to run (workers, progress, cache, precision, ...); ``None``: the
            defaults of :class:`~clothingclf.settings.RunOptions`.
        checkpoint_path: Write a checkpoint here after every epoch (atomically: a crash
            leaves the previous one intact).
        resume: Continue from such a checkpoint: same schedule, same data order, same
            result as if the run had not stopped.

    Returns:
        The best and final weights, the history and counts (:class:`TrainResult`).

    Raises:
        TrainingDivergedError: The loss became NaN or infinite (the message names the epoch
            and batch and suggests a lower learning rate).
        InvalidParameterError: Empty training set, or ``resume`` from a run with other
            settings.
        ModelFileError: ``resume`` is not a readable checkpoint.

    Example:
        >>> import tempfile, pandas as pd
        >>> from PIL import Image
        >>> from clothingclf.backbones import build_model
        >>> folder = tempfile.mkdtemp()
        >>> rows = []
        >>> for i in range(8):
        ...     Image.new("RGB", (40, 40), (255 * (i % 2), 0, 0)).save(f"{folder}/{i}.jpg")
        ...     rows.append({"path": f"{folder}/{i}.jpg", "label_id": i % 2})
        >>> table = pd.DataFrame(rows)
        >>> net, prep, _ = build_model("resnet18", weights=None, num_classes=2, image_size=32)
        >>> config = resolve_config("fast", epochs=1, head_epochs=2)
        >>> quiet = resolve_options(progress=False, num_workers=0)
        >>> result = train_model(net, table, table, class_weights=None, preprocessing=prep,
        ...                      config=config, device=torch.device("cpu"), options=quiet)
        >>> [row["epoch"] for row in result.history], result.image_passes
        ([0.0, 1.0], 16)
    """
    started = time.perf_counter()
    if len(train) == 0:
        raise InvalidParameterError("The training table is empty; expected at least one row.")
    processes, device = _join_processes(device)
    options = options or RunOptions()
    printer = _Printer(options.progress and processes.main)
    bf16 = _use_bf16(options, device)
    channels_last = _use_channels_last(options, device, bf16)
    views = _Views(preprocessing, device, channels_last)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)

    # The data: each process decodes only its own shard, once.
    side = preprocessing.resize_size
    train_rows, _ = _shard(len(train), processes, config.seed)
    train_paths = train["path"].astype(str).to_numpy()[train_rows].tolist()
    train_labels = torch.as_tensor(train["label_id"].to_numpy()[train_rows], dtype=torch.long)
    train_images = build_image_cache(
        train_paths,
        size=side,
        interpolation=preprocessing.interpolation,
        cache_dir=options.cache_dir,
        num_workers=options.num_workers if len(train_paths) >= 256 else 0,
        progress=printer.bar,
        aspect=preprocessing.aspect,
    )
    if val is not None and len(val) > 0:
        val_rows, val_real_np = _shard(len(val), processes, config.seed + 1)
        val_images = build_image_cache(
            val["path"].astype(str).to_numpy()[val_rows].tolist(),
            size=side,
            interpolation=preprocessing.interpolation,
            cache_dir=options.cache_dir,
            num_workers=options.num_workers if len(val_rows) >= 256 else 0,
            aspect=preprocessing.aspect,
        )
        val_labels = torch.as_tensor(val["label_id"].to_numpy()[val_rows], dtype=torch.long)
        val_real: torch.Tensor | None = torch.as_tensor(val_real_np)
    else:
        val_images, val_labels, val_real = None, None, None

    weight = None
    if config.class_weighted and class_weights is not None:
        weight = torch.as_tensor(list(class_weights), dtype=torch.float32, device=device)
    per_process = max(1, config.batch_size // processes.world)

    # The weights that are validated and kept: the average when there is one.
    average = _Average(model, config.ema_decay) if config.ema_decay > 0 else None

    def kept() -> nn.Module:
        return model if average is None else average.model

    # The latest validation's probabilities (rows in the validation table's order), and
    # those of the best epoch; not in distributed runs, where a process sees only its shard.
    last_probabilities: torch.Tensor | None = None
    best_probabilities: torch.Tensor | None = None

    def validate() -> tuple[float, float]:
        nonlocal last_probabilities
        if val_images is None or val_labels is None or val_real is None:
            return math.nan, math.nan
        chunks: list[torch.Tensor] | None = None if processes.distributed else []
        sums = _evaluate(
            kept(),
            val_images,
            val_labels,
            val_real,
            views,
            tta=config.tta,
            bf16=bf16,
            batch_size=per_process,
            keep=chunks,
        )
        if chunks:
            last_probabilities = torch.cat(chunks)
        loss_sum, correct, count = _all_sum(list(sums), processes, device)
        return loss_sum / max(count, 1.0), correct / max(count, 1.0)

    def due(epoch: int) -> bool:
        """Whether ``epoch`` is validated (``val_every``; the last epoch always is)."""
        return (
            epoch == config.epochs
            or (epoch > 0 and epoch % config.val_every == 0)
            or (epoch == 0 and config.val_every == 1)
        )

    history: list[dict[str, float]] = []
    head_interrupted = False
    image_passes = 0
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch, best_accuracy = 0, -math.inf
    first_epoch = 1
    optimizer = _make_optimizer(model, config)
    steps_per_epoch = sum(1 for _ in _batches(np.arange(len(train_rows)), per_process))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(config, steps_per_epoch))
    has_val = val_images is not None

    def checkpoint(epoch: int) -> None:
        if checkpoint_path is None or not processes.main:
            return
        atomic_save(
            {
                "format": CHECKPOINT_FORMAT,
                "epoch": epoch,
                "model": _cpu_state(model),
                "average": average.state() if average is not None else None,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": None,  # bfloat16 autocast needs no gradient scaler
                "history": history,
                "best_state": best_state,
                "best_epoch": best_epoch,
                "best_val_accuracy": best_accuracy if has_val else None,
                "best_val_probabilities": best_probabilities,
                "val_probabilities": last_probabilities,
                "image_passes": image_passes,
                "rng": _rng_state(),
                "config": config.to_dict(),
            },
            checkpoint_path,
        )

    def record(row: dict[str, float]) -> None:
        nonlocal best_state, best_epoch, best_accuracy, best_probabilities
        history.append(row)
        accuracy = row["val_accuracy"]
        validated = has_val and not math.isnan(accuracy)
        if not has_val or (validated and accuracy > best_accuracy):
            best_accuracy = accuracy if has_val else best_accuracy
            best_epoch = int(row["epoch"])
            best_state = _cpu_state(kept())
            best_probabilities = last_probabilities
        validation = (
            f"val loss {row['val_loss']:.4f}  val acc {row['val_accuracy']:.4f}"
            if validated
            else "not validated (val_every)"
            if has_val
            else "no validation"
        )
        printer.line(
            f"epoch {int(row['epoch']):>3}  train loss {row['train_loss']:.4f}  {validation}  "
            f"lr {row['lr']:.2e}  size {int(row['image_size'])}  {row['seconds']:.1f}s"
        )

    if resume is not None:
        resume_path = Path(resume)
        saved = read_training_checkpoint(resume_path)
        try:
            _check_resume(saved["config"], config, resume_path)
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            if average is not None:  # _check_resume saw that the run kept one too
                average.load(saved["average"])
            history = [dict(row) for row in saved["history"]]
            best_state = saved["best_state"]
            if not isinstance(best_state, dict) or not all(
                isinstance(v, torch.Tensor) for v in best_state.values()
            ):
                raise TypeError("best_state is not a dict of tensors")
            best_epoch = int(saved["best_epoch"])
            best_accuracy = (
                float(saved["best_val_accuracy"])
                if saved["best_val_accuracy"] is not None
                else -math.inf
            )
            image_passes = int(saved["image_passes"])
            first_epoch = int(saved["epoch"]) + 1
            best_probabilities = _optional_tensor(saved.get("best_val_probabilities"))
            last_probabilities = _optional_tensor(saved.get("val_probabilities"))
            _set_rng_state(saved["rng"])
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as error:
            if isinstance(error, InvalidParameterError):  # other settings than the checkpoint's
                raise
            from .exceptions import ModelFileError

            detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ModelFileError(
                f"{str(resume_path)!r} is a damaged training checkpoint ({type(error).__name__}: "
                f"{detail}). Resume from an earlier copy, or start the fit again."
            ) from None
        printer.line(f"resumed from {str(resume_path)!r} after epoch {int(saved['epoch'])}")
    elif config.head_epochs > 0:
        stage_started = time.perf_counter()
        try:
            passes, head_loss = _train_head(
                model,
                train_images,
                train_labels,
                views,
                config=config,
                weight=weight,
                bf16=bf16,
                processes=processes,
                batch_size=per_process,
            )
            image_passes += passes
            if average is not None:  # the average starts from what the head stage left
                average.model.load_state_dict(model.state_dict())
            val_loss, val_accuracy = validate() if due(0) else (math.nan, math.nan)
        except KeyboardInterrupt:
            head_interrupted = True
        else:
            record(
                {
                    "epoch": 0.0,
                    "train_loss": head_loss,
                    "val_loss": val_loss,
                    "val_accuracy": val_accuracy,
                    "lr": config.head_lr,
                    "seconds": time.perf_counter() - stage_started,
                    "image_size": float(preprocessing.image_size),
                    "image_passes": float(image_passes),
                }
            )
            checkpoint(0)

    network: nn.Module = model
    if processes.distributed:
        network = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if options.compile:
        network = cast(nn.Module, torch.compile(network))

    interrupted, stopped_early = head_interrupted, False
    epoch = first_epoch - 1
    if interrupted:
        printer.line("interrupted in the head-only stage; keeping the weights as they are")
    try:
        for epoch in range(first_epoch, 0 if interrupted else config.epochs + 1):
            if (
                config.early_stopping is not None
                and has_val
                and history
                and epoch - 1 - best_epoch >= config.early_stopping
            ):
                stopped_early = True
                break
            epoch_started = time.perf_counter()
            trim_kept_memory()  # what the previous phase freed (see reuse_memory)
            size = _image_size(config, epoch, preprocessing.image_size)
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
            order = torch.randperm(len(train_rows), generator=generator).numpy()
            network.train()
            if config.freeze_bn:
                for module in model.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
            loss_sum, seen = 0.0, 0
            total = len(order) * processes.world
            for batch_number, rows in enumerate(_batches(order, per_process), start=1):
                index = torch.as_tensor(rows)
                inputs = views.augmented(
                    train_images[index],
                    size,
                    generator,
                    min_scale=config.min_scale,
                    flip=config.flip,
                    color_jitter=config.color_jitter,
                )
                target = train_labels[index].to(device, non_blocking=True)
                inputs, share = _mix(
                    inputs,
                    generator,
                    mixup_alpha=config.mixup_alpha,
                    cutmix_alpha=config.cutmix_alpha,
                )
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = network(inputs)
                scores = logits.float()
                loss = _loss(scores, target, weight, config.label_smoothing)
                if share < 1.0:  # mixed with the reversed batch
                    partner = _loss(scores, target.flip(0), weight, config.label_smoothing)
                    loss = share * loss + (1.0 - share) * partner
                value = float(_all_sum([float(loss.detach())], processes, device)[0])
                value /= processes.world
                if not math.isfinite(value):
                    raise TrainingDivergedError(
                        f"The training loss became {value} in epoch {epoch}, batch "
                        f"{batch_number} (learning rate {scheduler.get_last_lr()[0]:.3g}). "
                        "Expected a finite loss. Try a lower lr (for example a tenth), "
                        "amp='off', or check the images for corrupt pixels."
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                scheduler.step()
                if average is not None:
                    average.update()
                loss_sum += value * len(rows)
                seen += len(rows)
                image_passes += len(rows) * processes.world
                printer.progress(
                    f"epoch {epoch}/{config.epochs}",
                    seen * processes.world,
                    total,
                    loss_sum / seen,
                    epoch_started,
                )
            val_loss, val_accuracy = validate() if due(epoch) else (math.nan, math.nan)
            record(
                {
                    "epoch": float(epoch),
                    "train_loss": loss_sum / max(seen, 1),
                    "val_loss": val_loss,
                    "val_accuracy": val_accuracy,
                    "lr": float(optimizer.param_groups[0]["lr"]),
                    "seconds": time.perf_counter() - epoch_started,
                    "image_size": float(size),
                    "image_passes": float(image_passes),
                }
            )
            checkpoint(epoch)
    except KeyboardInterrupt:
        interrupted = True
        printer.line(f"interrupted in epoch {epoch}; keeping the weights of epoch {best_epoch}")

    if average is not None and average.steps > 0:  # the model returns holding what it keeps
        model.load_state_dict(average.model.state_dict())
    final_state = _cpu_state(model)
    if best_state is None:
        best_state, best_epoch = final_state, max(0, epoch if not interrupted else epoch - 1)
    if processes.created_group:
        dist.barrier()
        dist.destroy_process_group()
    validated = [row["val_accuracy"] for row in history if not math.isnan(row["val_accuracy"])]
    final_accuracy = validated[-1] if validated and has_val else None
    return TrainResult(
        best_state=best_state,
        final_state=final_state,
        history=history,
        best_epoch=best_epoch,
        best_val_accuracy=best_accuracy if has_val and validated else None,
        final_val_accuracy=final_accuracy,
        image_passes=image_passes,
        interrupted=interrupted,
        stopped_early=stopped_early,
        seconds=time.perf_counter() - started,
        best_val_probabilities=_as_array(best_probabilities),
        final_val_probabilities=_as_array(last_probabilities),
    )


def _optional_tensor(value: Any) -> torch.Tensor | None:
    if value is None:
        return None
    if not isinstance(value, torch.Tensor):
        raise TypeError("validation probabilities are not a tensor")
    return value


def _as_array(value: torch.Tensor | None) -> np.ndarray | None:
    return None if value is None else value.double().numpy()


def _train_head(
    model: ClothingNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    views: _Views,
    *,
    config: TrainConfig,
    weight: torch.Tensor | None,
    bf16: bool,
    processes: _Processes,
    batch_size: int,
) -> tuple[int, float]:
    """Stage one: fit the head on cached features of the frozen backbone.

    Returns the image-passes and the mean training loss of the last epoch.
    """
    # One view per image: a mirrored second view doubles this stage's cost for no gain
    # that the full fine-tune that follows does not give anyway.
    features = _features(
        model.features, images, views, bf16=bf16, flip=False, batch_size=batch_size
    )
    targets = labels.to(views.device)
    if processes.distributed:
        gathered = [torch.empty_like(features) for _ in range(processes.world)]
        dist.all_gather(gathered, features)
        gathered_targets = [torch.empty_like(targets) for _ in range(processes.world)]
        dist.all_gather(gathered_targets, targets)
        features, targets = torch.cat(gathered), torch.cat(gathered_targets)
    head = copy.deepcopy(model.head).float()
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.head_lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(config.seed)
    steps = config.head_epochs * math.ceil(len(features) / 64)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps))
    head.train()
    loss_sum, seen = 0.0, 0
    with torch.enable_grad():
        for _ in range(config.head_epochs):
            order = torch.randperm(len(features), generator=generator).to(views.device)
            loss_sum, seen = 0.0, 0
            for start in range(0, len(order), 64):
                rows = order[start : start + 64]
                loss = _loss(head(features[rows]), targets[rows], weight, config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                scheduler.step()
                loss_sum += float(loss.detach()) * len(rows)
                seen += len(rows)
    model.head.load_state_dict(head.state_dict())
    return len(features), loss_sum / max(seen, 1)
