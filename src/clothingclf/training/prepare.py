"""What one fit is made of before its first step: :func:`prepare_fit` joins the processes,
places the model, decodes the data and builds the loss, the optimiser and its schedule; the
parts that do not change as it trains are its :class:`Setup`, the rest its
:class:`~clothingclf.training.state.Run`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..backbones import ClothingNet, Preprocessing
from ..calibration import class_prior
from ..settings import RunOptions, TrainConfig
from .augment import Views, batches
from .averaging import Average
from .inputs import Data, load_data
from .precision import use_bf16, use_channels_last
from .processes import Processes, join_processes
from .state import Run
from .steps import Objective, Printer, lr_factor, make_optimizer

__all__: list[str] = []


@dataclass(frozen=True)
class Setup:
    """What every stage of one fit reads: its settings, where it runs, and its data."""

    config: TrainConfig
    prep: Preprocessing
    device: torch.device
    processes: Processes
    bf16: bool
    views: Views
    printer: Printer
    objective: Objective
    per_process: int  # this process's share of each batch
    data: Data
    checkpoint_path: str | os.PathLike[str] | None


def prepare_fit(
    model: ClothingNet,
    train: pd.DataFrame,
    val: pd.DataFrame | None,
    class_weights: Sequence[float] | None,
    prep: Preprocessing,
    config: TrainConfig,
    device: torch.device,
    options: RunOptions,
    checkpoint_path: str | os.PathLike[str] | None,
    teacher_probabilities: np.ndarray | None,
) -> tuple[Setup, Run]:
    """Join the processes, place the model, decode the data, make the optimiser."""
    processes, device = join_processes(device)
    printer = Printer(options.progress and processes.main)
    bf16 = use_bf16(options, device)
    channels_last = use_channels_last(options, device, bf16)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    data = load_data(
        train, val, prep, config, options, processes, printer.bar, teacher_probabilities
    )
    weight = None
    if config.class_weighted and class_weights is not None:
        weight = torch.as_tensor(list(class_weights), dtype=torch.float32, device=device)
    # the prior that prediction adds back (the classifier stores the same class_prior)
    prior = torch.tensor(class_prior(train["label_id"], model.num_classes), device=device)
    per_process = max(1, config.batch_size // processes.world)
    setup = Setup(
        config, prep, device, processes, bf16, Views(prep, device, channels_last), printer,
        Objective(config, weight, prior), per_process, data, checkpoint_path,
    )  # fmt: skip
    average = Average(model, config.ema_decay) if config.ema_decay > 0 else None
    optimizer = make_optimizer(model, config)
    steps_per_epoch = sum(1 for _ in batches(np.arange(len(data.train_labels)), per_process))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, steps_per_epoch))
    return setup, Run(model, average, optimizer, scheduler)
