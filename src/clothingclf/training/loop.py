"""One network's fit: the head-only stage, the epochs, validation, checkpoints, resume.

:func:`train_model` fine-tunes a :class:`~clothingclf.backbones.ClothingNet` on a training
table and picks the best epoch on a validation table. It follows a
:class:`~clothingclf.settings.TrainConfig` (made by
:func:`~clothingclf.settings.resolve_config` from a named recipe) and runs as its
:class:`~clothingclf.settings.RunOptions` say.

Each epoch is trained by a function that returns its metrics (``_train_one_epoch``;
``_train_head_stage`` for the head-only stage, epoch 0) and validated, when due, by
``_validate`` (loss and accuracy); then ``_record`` decides what follows from its history
row: the best weights are kept (``_keep_best``), its line is printed (``_epoch_line``) and the
checkpoint written (:func:`~clothingclf.training.state.save_checkpoint`).

The data path decodes each photo once (:mod:`clothingclf.data.cache`) and augments uint8 tensors
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

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..backbones import ClothingNet, Preprocessing
from ..exceptions import (
    InvalidParameterError,
    TrainingDivergedError,
)
from ..settings import RunOptions, TrainConfig
from .augment import batches, image_size, mix
from .averaging import cpu_state
from .memory import heap_reuse_available, reused_memory, trim_kept_memory
from .prepare import Setup, prepare_fit
from .processes import all_sum, leave_processes
from .state import Run, as_array, restore_checkpoint, save_checkpoint
from .steps import evaluate, train_head

__all__ = ["TrainResult", "train_model"]


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


def _reuses_memory(options: RunOptions, device: torch.device) -> bool:
    """``reuse_memory``: "auto" keeps freed memory on the heap when training on the CPU
    (on a GPU the activations are not in the process heap) where glibc allows it."""
    if options.reuse_memory != "auto":
        return options.reuse_memory == "on"
    return device.type == "cpu" and heap_reuse_available()


def _due(config: TrainConfig, epoch: int) -> bool:
    """Whether ``epoch`` is validated (``val_every``; the last epoch always is)."""
    return (
        epoch == config.epochs
        or (epoch > 0 and epoch % config.val_every == 0)
        or (epoch == 0 and config.val_every == 1)
    )


@dataclass(frozen=True)
class _EpochMetrics:
    """What one stage of training returns (the head-only stage is epoch 0)."""

    train_loss: float  # mean over the epoch (the head-only stage: over its last epoch)
    lr: float  # the last step's (the head-only stage: head_lr)
    image_size: int
    image_passes: int  # cumulative


_NOT_VALIDATED = (math.nan, math.nan)


def _validate(setup: Setup, run: Run) -> tuple[float, float]:
    """Validation loss and accuracy of the kept weights (NaN without validation)."""
    data = setup.data
    if data.val_images is None or data.val_labels is None or data.val_real is None:
        return _NOT_VALIDATED
    # Probabilities per row only in a single process, which sees every validation image.
    chunks: list[torch.Tensor] | None = None if setup.processes.distributed else []
    sums = evaluate(
        run.kept(),
        data.val_images,
        data.val_labels,
        data.val_real,
        setup.views,
        tta=setup.config.tta,
        # float32 as predict runs: fit's calibration is fitted on these probabilities
        bf16=False,
        batch_size=setup.per_process,
        keep=chunks,
    )
    if chunks:
        run.last_probabilities = torch.cat(chunks)
    loss_sum, correct, count = all_sum(list(sums), setup.processes, setup.device)
    return loss_sum / max(count, 1.0), correct / max(count, 1.0)


def _train_head_stage(setup: Setup, run: Run) -> _EpochMetrics:
    """The new head alone on cached features of the frozen backbone."""
    config = setup.config
    passes, head_loss = train_head(
        run.model,
        setup.data.train_images,
        setup.data.train_labels,
        setup.views,
        config=config,
        objective=setup.objective,
        soft=setup.data.train_soft,
        bf16=setup.bf16,
        processes=setup.processes,
        batch_size=setup.per_process,
    )
    run.image_passes += passes
    if run.average is not None:  # the average starts from what the head stage left
        run.average.model.load_state_dict(run.model.state_dict())
    return _EpochMetrics(head_loss, config.head_lr, setup.prep.image_size, run.image_passes)


def _train_one_epoch(setup: Setup, run: Run, network: nn.Module, epoch: int) -> _EpochMetrics:
    """One epoch over all layers at this epoch's image size."""
    config, data, processes = setup.config, setup.data, setup.processes
    started = time.perf_counter()
    trim_kept_memory()  # what the previous phase freed (see reuse_memory)
    size = image_size(config, epoch, setup.prep.image_size)
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    order = torch.randperm(len(data.train_labels), generator=generator).numpy()
    network.train()
    if config.freeze_bn:
        for module in run.model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    loss_sum, seen = 0.0, 0
    total = len(order) * processes.world
    for batch_number, rows in enumerate(batches(order, setup.per_process), start=1):
        value = _train_step(setup, run, network, rows, size, generator, (epoch, batch_number))
        loss_sum += value * len(rows)
        seen += len(rows)
        run.image_passes += len(rows) * processes.world
        label = f"epoch {epoch}/{config.epochs}"
        setup.printer.progress(label, seen * processes.world, total, loss_sum / seen, started)
    lr = float(run.optimizer.param_groups[0]["lr"])
    return _EpochMetrics(loss_sum / max(seen, 1), lr, size, run.image_passes)


def _history_row(
    epoch: int, metrics: _EpochMetrics, validation: tuple[float, float], seconds: float
) -> dict[str, float]:
    """The history's row of ``epoch`` (see :class:`TrainResult`)."""
    val_loss, val_accuracy = validation
    return {
        "epoch": float(epoch),
        "train_loss": metrics.train_loss,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
        "lr": metrics.lr,
        "seconds": seconds,
        "image_size": float(metrics.image_size),
        "image_passes": float(metrics.image_passes),
    }


def _keep_best(run: Run, row: dict[str, float], has_val: bool) -> None:
    """Keep the weights of ``row``'s epoch if it is the best so far: the best validation
    accuracy, or without validation the latest epoch."""
    accuracy = row["val_accuracy"]
    if not has_val or (not math.isnan(accuracy) and accuracy > run.best_accuracy):
        run.best_accuracy = accuracy if has_val else run.best_accuracy
        run.best_epoch = int(row["epoch"])
        run.best_state = cpu_state(run.kept())
        run.best_probabilities = run.last_probabilities


def _epoch_line(row: dict[str, float], has_val: bool) -> str:
    """The line printed after an epoch."""
    validation = (
        f"val loss {row['val_loss']:.4f}  val acc {row['val_accuracy']:.4f}"
        if has_val and not math.isnan(row["val_accuracy"])
        else "not validated (val_every)"
        if has_val
        else "no validation"
    )
    return (
        f"epoch {int(row['epoch']):>3}  train loss {row['train_loss']:.4f}  {validation}  "
        f"lr {row['lr']:.2e}  size {int(row['image_size'])}  {row['seconds']:.1f}s"
    )


def _record(setup: Setup, run: Run, row: dict[str, float]) -> None:
    """What follows an epoch: its row joins the history, its weights are kept if it is the
    best epoch so far, its line is printed and the checkpoint written."""
    has_val = setup.data.has_val
    run.history.append(row)
    _keep_best(run, row, has_val)
    setup.printer.line(_epoch_line(row, has_val))
    if setup.checkpoint_path is not None and setup.processes.main:
        save_checkpoint(run, int(row["epoch"]), setup.config, has_val, setup.checkpoint_path)


def _head_stage(setup: Setup, run: Run) -> bool:
    """Epoch 0, the head-only stage: its training, validation (when due) and record;
    ``True`` when it was interrupted (Ctrl-C)."""
    started = time.perf_counter()
    try:
        metrics = _train_head_stage(setup, run)
        validation = _validate(setup, run) if _due(setup.config, 0) else _NOT_VALIDATED
    except KeyboardInterrupt:
        return True
    _record(setup, run, _history_row(0, metrics, validation, time.perf_counter() - started))
    return False


def _epoch(setup: Setup, run: Run, network: nn.Module, epoch: int) -> None:
    """Epoch ``epoch`` over all layers: its training, validation (when due) and record."""
    started = time.perf_counter()
    metrics = _train_one_epoch(setup, run, network, epoch)
    validation = _validate(setup, run) if _due(setup.config, epoch) else _NOT_VALIDATED
    _record(setup, run, _history_row(epoch, metrics, validation, time.perf_counter() - started))


def _train_step(
    setup: Setup,
    run: Run,
    network: nn.Module,
    rows: np.ndarray,
    size: int,
    generator: torch.Generator,
    where: tuple[int, int],
) -> float:
    """One optimiser step on the batch ``rows``; the loss, averaged over the processes."""
    config, device, processes = setup.config, setup.device, setup.processes
    index = torch.as_tensor(rows)
    inputs = setup.views.augmented(
        setup.data.train_images[index],
        size,
        generator,
        min_scale=config.min_scale,
        flip=config.flip,
        color_jitter=config.color_jitter,
    )
    target = setup.data.train_labels[index].to(device, non_blocking=True)
    soft = setup.data.train_soft
    soft = None if soft is None else soft[index].to(device, non_blocking=True)
    inputs, share = mix(
        inputs, generator, mixup_alpha=config.mixup_alpha, cutmix_alpha=config.cutmix_alpha
    )
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=setup.bf16):
        logits = network(inputs)
    scores = logits.float()
    loss = setup.objective(scores, target, soft)
    if share < 1.0:  # mixed with the reversed batch
        partner = setup.objective(scores, target.flip(0), None if soft is None else soft.flip(0))
        loss = share * loss + (1.0 - share) * partner
    value = float(all_sum([float(loss.detach())], processes, device)[0]) / processes.world
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"The training loss became {value} in epoch {where[0]}, batch {where[1]} "
            f"(learning rate {run.scheduler.get_last_lr()[0]:.3g}). Expected a finite loss. "
            "Try a lower lr (for example a tenth), amp='off', or check the images for "
            "corrupt pixels."
        )
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    run.optimizer.step()
    run.scheduler.step()
    if run.average is not None:
        run.average.update()
    return value


def _result(setup: Setup, run: Run, epoch: int, interrupted: bool, stopped: bool,
            started: float) -> TrainResult:  # fmt: skip
    """The model ends holding what it keeps; the process group is left; the result."""
    if run.average is not None and run.average.steps > 0:
        run.model.load_state_dict(run.average.model.state_dict())
    final_state = cpu_state(run.model)
    if run.best_state is None:
        run.best_state, run.best_epoch = final_state, max(0, epoch - 1 if interrupted else epoch)
    leave_processes(setup.processes)
    has_val = setup.data.has_val
    validated = [row["val_accuracy"] for row in run.history if not math.isnan(row["val_accuracy"])]
    return TrainResult(
        best_state=run.best_state,
        final_state=final_state,
        history=run.history,
        best_epoch=run.best_epoch,
        best_val_accuracy=run.best_accuracy if has_val and validated else None,
        final_val_accuracy=validated[-1] if validated and has_val else None,
        image_passes=run.image_passes,
        interrupted=interrupted,
        stopped_early=stopped,
        seconds=time.perf_counter() - started,
        best_val_probabilities=as_array(run.best_probabilities),
        final_val_probabilities=as_array(run.last_probabilities),
    )


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
    teacher_probabilities: np.ndarray | None = None,
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
        teacher_probabilities: A teacher's class probabilities for each row of ``train``:
            the loss then matches them too (``distill_weight``, ``distill_temperature``).

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
        >>> from clothingclf.settings import resolve_config, resolve_options
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
    if teacher_probabilities is not None and np.shape(teacher_probabilities) != (
        len(train),
        model.num_classes,
    ):
        raise InvalidParameterError(
            f"teacher_probabilities must hold one row of {model.num_classes} class "
            f"probabilities per training row ({len(train)}); found shape "
            f"{np.shape(teacher_probabilities)}."
        )
    options = options or RunOptions()
    with reused_memory(_reuses_memory(options, device)):
        setup, run = prepare_fit(
            model, train, val, class_weights, preprocessing, config, device, options,
            checkpoint_path, teacher_probabilities,
        )  # fmt: skip
        interrupted = False
        if resume is not None:
            after = restore_checkpoint(run, resume, config)
            setup.printer.line(f"resumed from {str(resume)!r} after epoch {after}")
        elif config.head_epochs > 0:
            interrupted = _head_stage(setup, run)
        network: nn.Module = model
        if setup.processes.distributed:
            ids = [setup.device.index] if setup.device.type == "cuda" else None
            network = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if options.compile:
            network = cast(nn.Module, torch.compile(network))
        if interrupted:
            setup.printer.line(
                "interrupted in the head-only stage; keeping the weights as they are"
            )
        stopped, epoch = False, run.first_epoch - 1
        try:
            for epoch in range(run.first_epoch, 0 if interrupted else config.epochs + 1):
                if _stalled(setup, run, epoch):
                    stopped = True
                    break
                _epoch(setup, run, network, epoch)
        except KeyboardInterrupt:
            interrupted = True
            setup.printer.line(
                f"interrupted in epoch {epoch}; keeping the weights of epoch {run.best_epoch}"
            )
        return _result(setup, run, epoch, interrupted, stopped, started)


def _stalled(setup: Setup, run: Run, epoch: int) -> bool:
    """``early_stopping``: as many epochs as it says have passed without a better one."""
    patience = setup.config.early_stopping
    return (
        patience is not None
        and setup.data.has_val
        and bool(run.history)
        and epoch - 1 - run.best_epoch >= patience
    )
