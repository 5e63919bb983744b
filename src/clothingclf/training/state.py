"""The state of a fit as it trains (:class:`_Run`), and its training checkpoint: what is
saved after each epoch and restored on resume, random state included, so a resumed fit
ends with exactly the weights of an uninterrupted one."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from ..backbones import ClothingNet
from ..checkpoint import (
    CHECKPOINT_FORMAT,
    atomic_save,
    check_resume_settings,
    read_training_checkpoint,
)
from ..exceptions import InvalidParameterError, ModelFileError, first_line
from ..settings import TrainConfig

if TYPE_CHECKING:
    from .steps import _Average


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


def _optional_tensor(value: Any) -> torch.Tensor | None:
    if value is None:
        return None
    if not isinstance(value, torch.Tensor):
        raise TypeError("validation probabilities are not a tensor")
    return value


def _as_array(value: torch.Tensor | None) -> np.ndarray | None:
    return None if value is None else value.double().numpy()


@dataclass
class _Run:
    """The state of a fit that changes as it trains; a checkpoint saves all of it."""

    model: ClothingNet
    average: _Average | None  # validated and kept instead of the model when there is one
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


def _save_checkpoint(
    run: _Run, epoch: int, config: TrainConfig, has_val: bool, path: str | os.PathLike[str]
) -> None:
    """Write the training checkpoint of ``run`` after ``epoch`` (atomically)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch,
        "model": _cpu_state(run.model),
        "average": run.average.state() if run.average is not None else None,
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": None,  # bfloat16 autocast needs no gradient scaler
        "history": run.history,
        "best_state": run.best_state,
        "best_epoch": run.best_epoch,
        "best_val_accuracy": run.best_accuracy if has_val else None,
        "best_val_probabilities": run.best_probabilities,
        "val_probabilities": run.last_probabilities,
        "image_passes": run.image_passes,
        "rng": _rng_state(),
        "config": config.to_dict(),
    }
    atomic_save(payload, path)


def _resume(run: _Run, resume: str | os.PathLike[str], config: TrainConfig) -> int:
    """Restore ``run`` (and the random state) from a checkpoint of the same settings; the
    epoch it was written after.

    Raises:
        InvalidParameterError: The checkpoint was trained with other settings.
        ModelFileError: The file is no training checkpoint, or a damaged one.
    """
    path = Path(resume)
    saved = read_training_checkpoint(path)
    try:
        check_resume_settings(saved["config"], config.to_dict(), path)
        run.model.load_state_dict(saved["model"])
        run.optimizer.load_state_dict(saved["optimizer"])
        run.scheduler.load_state_dict(saved["scheduler"])
        if run.average is not None:  # check_resume_settings saw the run kept one too
            run.average.load(saved["average"])
        run.history = [dict(row) for row in saved["history"]]
        best_state = saved["best_state"]
        if not isinstance(best_state, dict) or not all(
            isinstance(v, torch.Tensor) for v in best_state.values()
        ):
            raise TypeError("best_state is not a dict of tensors")
        run.best_state = best_state
        run.best_epoch = int(saved["best_epoch"])
        best = saved["best_val_accuracy"]
        run.best_accuracy = float(best) if best is not None else -math.inf
        run.image_passes = int(saved["image_passes"])
        epoch, best_epoch = int(saved["epoch"]), run.best_epoch
        if not 0 <= best_epoch <= epoch <= config.epochs or run.image_passes < 0:
            raise ValueError(
                f"epoch {epoch} and best epoch {best_epoch} do not fit a run of "
                f"{config.epochs} epochs (0 to {config.epochs}), or negative image passes"
            )
        run.first_epoch = epoch + 1
        run.best_probabilities = _optional_tensor(saved.get("best_val_probabilities"))
        run.last_probabilities = _optional_tensor(saved.get("val_probabilities"))
        _set_rng_state(saved["rng"])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as error:
        if isinstance(error, InvalidParameterError):  # other settings than the checkpoint's
            raise
        raise ModelFileError(
            f"{str(path)!r} is a damaged training checkpoint ({type(error).__name__}: "
            f"{first_line(error)}). Resume from an earlier copy, or start the fit again."
        ) from None
    return int(saved["epoch"])
