"""The model file and the training checkpoint: safetensors files that hold data only.

Both are `safetensors <https://huggingface.co/docs/safetensors>`_ files: the tensors in
the file's data section, everything else as JSON in its header. Reading one parses JSON
and copies raw numbers; nothing is unpickled, so a file from a stranger cannot run code.
The header's ``__metadata__`` holds three strings:

* ``format``: ``"clothingclf"`` for a model file, ``"clothingclf-training-checkpoint"``
  for a checkpoint written by ``fit(checkpoint=...)``;
* ``clothingclf``: the JSON of the payload (see below), where each tensor is replaced by
  ``{"__tensor__": NAME}``, the name of the tensor in the file (its path in the payload,
  such as ``state_dict/head.weight``);
* ``sha256``: the SHA-256 of the data section (the bytes after the header). A file whose
  tensors changed by a single byte is refused.

The JSON marks the values that JSON has no word for: ``{"__tuple__": [...]}``,
``{"__items__": [[key, value], ...]}`` for a dict whose keys are not all strings (an
optimiser's state), and ``{"__float__": "nan"}`` (or ``"inf"``, ``"-inf"``).

A model file's payload has these keys (format version 3)::

    format            "clothingclf"
    format_version    3
    library_version   the clothingclf version that wrote it
    model             the architecture spec of clothingclf.backbones.build_model
    state_dict        the weights (float32, or float16 / bfloat16 when saved so)
    classes           class names, in the order of the network's outputs
    preprocessing     clothingclf.backbones.Preprocessing.to_dict()
    config            the training configuration
    metrics           best and final validation accuracy, best epoch
    holds             "best" or "final": which weights the file holds
    history           per-epoch training history
    params            the estimator's parameters (optional)
    extra_networks    further networks: [{"preprocessing": ..., "state_dict": ...}] (optional)
    model_card        what the model is for, its data and test metrics (optional)

:func:`read_model_file` checks every field against its bounds (see
:func:`validate_model_payload`), so a hand-edited file is refused with a
:class:`~clothingclf.exceptions.ModelFileError` rather than loaded and failing, or
predicting NaN, later. The conventional suffix is ``.safetensors``; any suffix loads.

:func:`atomic_save` writes to a temporary file in the same folder, flushes it to disk and
renames it over the target: a crash or a full disk in the middle of a save leaves the
previous file as it was.
"""

from __future__ import annotations

from .files import atomic_save, check_payload, safe_load
from .fitted import (
    FittedModel,
    estimator_params,
    gathered_state,
    model_payload,
    read_fitted_model,
)
from .model_file import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MODEL_FILE_KEYS,
    read_model_file,
    validate_model_payload,
)
from .training_checkpoint import (
    CHECKPOINT_FORMAT,
    RESUME_FIELDS,
    TrainingCheckpoint,
    check_resume_settings,
    damaged_checkpoint,
    load_training_checkpoint,
    read_training_checkpoint,
    write_training_checkpoint,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MODEL_FILE_KEYS",
    "RESUME_FIELDS",
    "FittedModel",
    "TrainingCheckpoint",
    "atomic_save",
    "check_payload",
    "check_resume_settings",
    "damaged_checkpoint",
    "estimator_params",
    "gathered_state",
    "load_training_checkpoint",
    "model_payload",
    "read_fitted_model",
    "read_model_file",
    "read_training_checkpoint",
    "safe_load",
    "validate_model_payload",
    "write_training_checkpoint",
]
