"""The training checkpoint of ``fit(checkpoint=...)``: its reader and the settings a resumed
fit must share with it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..exceptions import InvalidParameterError, ModelFileError
from .files import safe_load

__all__ = [
    "CHECKPOINT_FORMAT",
    "RESUME_FIELDS",
    "check_resume_settings",
    "read_training_checkpoint",
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


#: Training settings that shape the schedule and the data order: resuming a training
#: checkpoint needs the same values.
RESUME_FIELDS = (
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
    "distill_weight",
    "distill_temperature",
    "logit_adjustment",
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
    "logit_adjustment": 0.0,
    # used only with a teacher, which no fit before them had: their defaults
    "distill_weight": 0.7,
    "distill_temperature": 2.0,
}


def check_resume_settings(
    saved: Mapping[str, Any], current: Mapping[str, Any], path: str | os.PathLike[str]
) -> None:
    """Refuse to resume a checkpoint whose settings (``saved``, its ``config``) differ from
    the ``current`` ones (``TrainConfig.to_dict()``) in a field of
    ``RESUME_FIELDS``.

    Raises:
        InvalidParameterError: The fields that differ, with both values.
    """
    recorded = {**_ADDED_OFF, "image_size": current["image_size"], **saved}
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
