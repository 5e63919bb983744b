"""The state of a fit as it trains (:class:`Run`), and its training checkpoint: what
:func:`save_checkpoint` writes after each epoch and :func:`restore_checkpoint` reads back on
resume, random state included, so a resumed fit ends with exactly the weights of an
uninterrupted one."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..backbones import ClothingNet
from ..checkpoint import (
    TrainingCheckpoint,
    check_resume_settings,
    damaged_checkpoint,
    load_training_checkpoint,
    write_training_checkpoint,
)
from ..exceptions import InvalidParameterError
from ..settings import TrainConfig
from .averaging import Average, cpu_state

__all__: list[str] = []


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


def as_array(value: torch.Tensor | None) -> np.ndarray | None:
    """Validation probabilities as float64 NumPy (as :class:`~clothingclf.training.TrainResult`
    holds them), or ``None``."""
    return None if value is None else value.double().numpy()


@dataclass
class Run:
    """The state of a fit that changes as it trains; a checkpoint saves all of it."""

    model: ClothingNet
    average: Average | None  # validated and kept instead of the model when there is one
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    history: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch: int = 0
    best_accuracy: float = -math.inf
    best_probabilities: torch.Tensor | None = None  # of the validation rows, at best_epoch
    last_probabilities: torch.Tensor | None = None  # at the latest validation
    image_passes: int = 0
    first_epoch: int = 1

    def kept(self) -> nn.Module:
        return self.model if self.average is None else self.average.model


def save_checkpoint(
    run: Run, epoch: int, config: TrainConfig, has_val: bool, path: str | os.PathLike[str]
) -> None:
    """Write the training checkpoint of ``run`` after ``epoch`` (atomically)."""
    checkpoint = TrainingCheckpoint(
        epoch=epoch,
        config=config.to_dict(),
        model=cpu_state(run.model),
        average=run.average.state() if run.average is not None else None,
        optimizer=run.optimizer.state_dict(),
        scheduler=run.scheduler.state_dict(),
        history=run.history,
        best_state=run.best_state,
        best_epoch=run.best_epoch,
        best_val_accuracy=run.best_accuracy if has_val else None,
        best_val_probabilities=run.best_probabilities,
        val_probabilities=run.last_probabilities,
        image_passes=run.image_passes,
        rng=_rng_state(),
    )
    write_training_checkpoint(checkpoint, path)


def restore_checkpoint(run: Run, resume: str | os.PathLike[str], config: TrainConfig) -> int:
    """Restore ``run`` (and the random state) from a checkpoint of the same settings; the
    epoch it was written after.

    Raises:
        InvalidParameterError: The checkpoint was trained with other settings.
        ModelFileError: The file is no training checkpoint, or a damaged one.
    """
    path = Path(resume)
    saved = load_training_checkpoint(path)
    try:
        check_resume_settings(saved.config, config.to_dict(), path)
        run.model.load_state_dict(saved.model)
        run.optimizer.load_state_dict(saved.optimizer)
        run.scheduler.load_state_dict(saved.scheduler)
        if run.average is not None:  # check_resume_settings saw the run kept one too
            if saved.average is None:
                raise TypeError("the checkpoint holds no weight average")
            run.average.load(saved.average)
        run.history = saved.history
        run.best_state = saved.best_state
        run.best_epoch = saved.best_epoch
        best = saved.best_val_accuracy
        run.best_accuracy = best if best is not None else -math.inf
        run.image_passes = saved.image_passes
        if not 0 <= saved.best_epoch <= saved.epoch <= config.epochs or run.image_passes < 0:
            raise ValueError(
                f"epoch {saved.epoch} and best epoch {saved.best_epoch} do not fit a run of "
                f"{config.epochs} epochs (0 to {config.epochs}), or negative image passes"
            )
        run.first_epoch = saved.epoch + 1
        run.best_probabilities = saved.best_val_probabilities
        run.last_probabilities = saved.val_probabilities
        _set_rng_state(saved.rng)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as error:
        if isinstance(error, InvalidParameterError):  # other settings than the checkpoint's
            raise
        raise damaged_checkpoint(path, error) from None
    return saved.epoch
