"""The training checkpoint of ``fit(checkpoint=...)``, written and read here: its fields
(:class:`TrainingCheckpoint`), and the settings a resumed fit must share with it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..exceptions import InvalidParameterError, ModelFileError, first_line
from ..settings import implied_values, resume_settings
from .files import atomic_save, safe_load

__all__ = [
    "CHECKPOINT_FORMAT",
    "RESUME_FIELDS",
    "TrainingCheckpoint",
    "check_resume_settings",
    "damaged_checkpoint",
    "load_training_checkpoint",
    "read_training_checkpoint",
    "write_training_checkpoint",
]

#: The ``format`` of a training checkpoint (``fit(checkpoint=...)``).
CHECKPOINT_FORMAT = "clothingclf-training-checkpoint"


def read_training_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training checkpoint (``fit(checkpoint=...)``) without unpickling anything.

    Raises:
        ModelFileError: The file is missing, unreadable, damaged or not a training
            checkpoint (a model file, say).
    """
    saved = safe_load(path, what="training checkpoint")
    if saved.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(
            f"{str(path)!r} is not a clothingclf training checkpoint (found format "
            f"{saved.get('format')!r}). Pass the file given as checkpoint= to the "
            "interrupted fit."
        )
    return saved


@dataclass
class TrainingCheckpoint:
    """What a training checkpoint holds: the state of a fit after ``epoch`` (the head-only
    stage is epoch 0), enough to go on exactly as an uninterrupted fit would.

    ``model``, ``best_state``: weights (``best_state``: those of ``best_epoch``);
    ``average``: the moving average's state, if the fit keeps one; ``optimizer``,
    ``scheduler``: their ``state_dict``; ``rng``: the random state of torch, NumPy and
    Python; ``config``: ``TrainConfig.to_dict()``; the validation probabilities of the
    best and of the latest validated epoch (``None`` in a distributed fit).
    """

    epoch: int
    config: dict[str, Any]
    model: dict[str, torch.Tensor]
    average: dict[str, Any] | None
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    history: list[dict[str, float]]
    best_state: dict[str, torch.Tensor] | None
    best_epoch: int
    best_val_accuracy: float | None
    best_val_probabilities: torch.Tensor | None
    val_probabilities: torch.Tensor | None
    image_passes: int
    rng: dict[str, Any]


def write_training_checkpoint(checkpoint: TrainingCheckpoint, path: str | os.PathLike[str]) -> None:
    """Write ``checkpoint`` to ``path`` atomically (a crash leaves the previous one)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "epoch": checkpoint.epoch,
        "model": checkpoint.model,
        "average": checkpoint.average,
        "optimizer": checkpoint.optimizer,
        "scheduler": checkpoint.scheduler,
        "scaler": None,  # bfloat16 autocast needs no gradient scaler
        "history": checkpoint.history,
        "best_state": checkpoint.best_state,
        "best_epoch": checkpoint.best_epoch,
        "best_val_accuracy": checkpoint.best_val_accuracy,
        "best_val_probabilities": checkpoint.best_val_probabilities,
        "val_probabilities": checkpoint.val_probabilities,
        "image_passes": checkpoint.image_passes,
        "rng": checkpoint.rng,
        "config": checkpoint.config,
    }
    atomic_save(payload, path)


def load_training_checkpoint(path: str | os.PathLike[str]) -> TrainingCheckpoint:
    """Read a training checkpoint and check the kind of each field.

    Raises:
        ModelFileError: What :func:`read_training_checkpoint` raises, or a field missing or
            of the wrong kind (a damaged file).
    """
    saved = read_training_checkpoint(path)
    try:
        best = saved["best_val_accuracy"]
        return TrainingCheckpoint(
            epoch=int(saved["epoch"]),
            config=dict(saved["config"]),
            model=_tensors(saved["model"], "model"),
            average=saved["average"],
            optimizer=dict(saved["optimizer"]),
            scheduler=dict(saved["scheduler"]),
            history=[dict(row) for row in saved["history"]],
            # None until an epoch is validated (val_every > 1)
            best_state=None
            if saved["best_state"] is None
            else _tensors(saved["best_state"], "best_state"),
            best_epoch=int(saved["best_epoch"]),
            best_val_accuracy=None if best is None else float(best),
            best_val_probabilities=_optional_tensor(saved.get("best_val_probabilities")),
            val_probabilities=_optional_tensor(saved.get("val_probabilities")),
            image_passes=int(saved["image_passes"]),
            rng=dict(saved["rng"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise damaged_checkpoint(path, error) from None


def damaged_checkpoint(path: str | os.PathLike[str], error: Exception) -> ModelFileError:
    """The error for a training checkpoint that cannot be resumed from."""
    return ModelFileError(
        f"{str(path)!r} is a damaged training checkpoint ({type(error).__name__}: "
        f"{first_line(error)}). Resume from an earlier copy, or start the fit again."
    )


def _tensors(value: Any, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(value, dict) or not all(isinstance(v, torch.Tensor) for v in value.values()):
        raise TypeError(f"{what} is not a dict of tensors")
    return value


def _optional_tensor(value: Any) -> torch.Tensor | None:
    if value is not None and not isinstance(value, torch.Tensor):
        raise TypeError("validation probabilities are not a tensor")
    return value


#: Training settings that shape the schedule, the data order or the loss (declared with
#: ``resume=True`` in :mod:`clothingclf.settings`): resuming a training checkpoint needs
#: the same values.
RESUME_FIELDS: tuple[str, ...] = resume_settings()


def check_resume_settings(
    saved: Mapping[str, Any], current: Mapping[str, Any], path: str | os.PathLike[str]
) -> None:
    """Refuse to resume a checkpoint whose settings (``saved``, its ``config``) differ from
    the ``current`` ones (``TrainConfig.to_dict()``) in a field of
    ``RESUME_FIELDS``.

    Raises:
        InvalidParameterError: The fields that differ, with both values.
    """
    # What a checkpoint written before a setting was added ran with; its image size it does
    # not tell (the classifier's parameter then), so that one is not compared.
    recorded = {**implied_values(), "image_size": current["image_size"], **saved}
    different = [
        f"{name} (checkpoint {recorded.get(name)!r}, now {current[name]!r})"
        for name in RESUME_FIELDS
        if recorded.get(name) != current[name]
    ]
    if different:
        raise InvalidParameterError(
            f"Cannot resume from {str(path)!r}: it was trained with other settings: "
            f"{'; '.join(different)}. Resume with the settings of the interrupted run."
        )
