"""Several networks, one per view of the photos, trained one after the other and averaged.

:func:`fit_networks` is the fit behind :meth:`ClothingClassifier.fit
<clothingclf.ClothingClassifier.fit>`: for each view of :meth:`TrainConfig.views
<clothingclf.settings.TrainConfig.views>` it builds a network, trains it as a one-network
fit of its own view (:func:`~clothingclf.training.train_model`), keeps the weights the
settings ask for, and hands the freed memory back before the next one. Under torchrun the
networks share one process group. Checkpoints go to one file per network
(:func:`network_file`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..backbones import ClothingNet, Preprocessing, build_model
from ..checkpoint import read_training_checkpoint
from ..probabilities import to_inference_layout
from ..settings import RECIPE_BACKBONES, RunOptions, TrainConfig
from .loop import TrainResult, train_model
from .memory import return_freed_memory
from .processes import join_processes, leave_processes

__all__ = ["Ensemble", "fit_networks", "network_file"]


@dataclass(frozen=True)
class Ensemble:
    """What :func:`fit_networks` trained: each network with its preprocessing (in the
    inference layout, holding the weights ``keep`` chose), each one's
    :class:`~clothingclf.training.TrainResult`, the architecture spec and the device."""

    networks: list[tuple[ClothingNet, Preprocessing]]
    results: list[TrainResult]
    spec: dict[str, Any]
    device: torch.device

    def averaged_accuracies(self, val: pd.DataFrame | None) -> tuple[float | None, float | None]:
        """Validation accuracy of the networks' averaged probabilities, at their best epochs
        and at their last validated ones (``None`` where a network has no probabilities)."""
        if val is None:
            return None, None
        truth = val["label_id"].to_numpy()
        scores: list[float | None] = []
        for which in ("best", "final"):
            mean = self.validation_probabilities(which, len(truth))
            scores.append(None if mean is None else float((mean.argmax(1) == truth).mean()))
        return scores[0], scores[1]

    def validation_probabilities(self, which: str, images: int) -> np.ndarray | None:
        """The networks' averaged validation probabilities (one row per validation image)
        at their ``"best"`` epochs or their last validated ones (``"final"``): what
        ``predict_proba(val, calibrated=False)`` gives for the weights of that epoch.
        ``None`` where a network has none for all ``images`` (a distributed fit keeps no
        rows)."""
        arrays = [getattr(result, f"{which}_val_probabilities") for result in self.results]
        if any(array is None or len(array) != images for array in arrays):
            return None
        return np.asarray(np.mean(arrays, axis=0), dtype=np.float64)


def network_file(path: str | os.PathLike[str] | None, index: int) -> str | os.PathLike[str] | None:
    """The training checkpoint of network ``index`` (0-based) of a fit checkpointed to
    ``path``: ``path`` itself for the first, ``<stem>.network<n><suffix>`` for the others.

    Example:
        >>> network_file("run/fit.ckpt", 0), network_file("run/fit.ckpt", 1)
        ('run/fit.ckpt', 'run/fit.network2.ckpt')
    """
    if path is None or index == 0:
        return path
    file = Path(path)
    named = file.with_name(f"{file.stem}.network{index + 1}{file.suffix}")
    return str(named) if isinstance(path, str) else named


def _resume_file(path: str | os.PathLike[str] | None, index: int) -> str | os.PathLike[str] | None:
    """What network ``index`` resumes from: its checkpoint if the interrupted fit got to it
    (the first network's must exist: resuming from nothing is a mistake)."""
    file = network_file(path, index)
    if file is None or index == 0 or Path(file).exists():
        return file
    return None


@contextlib.contextmanager
def _process_group(device: torch.device, several: bool) -> Iterator[torch.device]:
    """Join the torchrun process group once for a fit of several networks (each one's
    training would otherwise join and leave it), and leave it after the last network."""
    if not several:
        yield device
        return
    processes, device = join_processes(device)
    try:
        yield device
    finally:
        leave_processes(processes)


def fit_networks(
    backbone: str | torch.nn.Module | None,
    weights: Any,
    train: pd.DataFrame,
    val: pd.DataFrame | None,
    *,
    classes: Sequence[str],
    class_weights: Sequence[float] | None,
    config: TrainConfig,
    options: RunOptions,
    device: torch.device,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    teacher_probabilities: np.ndarray | None = None,
) -> Ensemble:
    """Train one network per view of ``config`` (see the module docstring).

    A Ctrl-C keeps the networks trained so far (the interrupted one with the weights it
    reached) and starts no other.

    Raises:
        ModelFileError: ``resume`` is not a training checkpoint (checked before any work).
        ClothingClfError: What :func:`~clothingclf.backbones.build_model` and
            :func:`~clothingclf.training.train_model` raise.
    """
    if resume is not None:  # a wrong file is refused before any work or progress line
        read_training_checkpoint(Path(resume))
    views = config.views()
    networks: list[tuple[ClothingNet, Preprocessing]] = []
    results: list[TrainResult] = []
    spec: dict[str, Any] = {}
    with _process_group(device, len(views) > 1) as device:
        for index, (size, aspect) in enumerate(views):
            with torch.random.fork_rng(devices=[]):  # each network starts from the seed
                torch.manual_seed(config.seed)
                model, preprocessing, spec = build_model(
                    backbone if backbone is not None else RECIPE_BACKBONES[config.recipe],
                    weights=weights,
                    num_classes=len(classes),
                    image_size=size,
                )
            preprocessing = preprocessing.with_aspect(aspect)
            if len(views) > 1 and options.progress and os.environ.get("RANK", "0") == "0":
                height, width = preprocessing.input_shape
                print(
                    f"network {index + 1} of {len(views)}: {width} x {height} px",
                    file=sys.stderr,
                    flush=True,
                )
            result = train_model(
                model,
                train,
                val,
                class_weights=class_weights if config.class_weighted else None,
                preprocessing=preprocessing,
                config=dataclasses.replace(config, image_size=size, aspect=aspect, extra_views=()),
                device=device,
                options=options,
                checkpoint_path=network_file(checkpoint, index),
                resume=_resume_file(resume, index),
                teacher_probabilities=teacher_probabilities,
            )
            model.load_state_dict(
                result.best_state if config.keep == "best" else result.final_state
            )
            to_inference_layout(model, device)
            networks.append((model, preprocessing))
            results.append(result)
            if result.interrupted:  # Ctrl-C: keep what is trained, start no other network
                break
            if index + 1 < len(views):
                return_freed_memory()
    return Ensemble(networks, results, spec, device)
