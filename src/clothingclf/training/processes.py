"""Several processes under ``torchrun``: joining the group, sums, and each one's shard."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data.distributed import DistributedSampler


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of a fit (one, outside torchrun)."""

    rank: int
    world: int
    created_group: bool

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def join_processes(device: torch.device) -> tuple[Processes, torch.device]:
    """Join the torchrun process group when the environment names one.

    Returns the processes and the device of this one: with several processes on GPUs,
    process ``LOCAL_RANK`` takes GPU ``LOCAL_RANK`` unless ``device`` names one.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    already = dist.is_available() and dist.is_initialized()
    if not already and (world <= 1 or not dist.is_available()):
        return Processes(0, 1, False), device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if already:
        return Processes(dist.get_rank(), dist.get_world_size(), False), device
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Processes(dist.get_rank(), dist.get_world_size(), True), device


def leave_processes(processes: Processes) -> None:
    """Leave the process group this run created (after every process got here); a group
    the caller created is left to the caller."""
    if processes.created_group:
        dist.barrier()
        dist.destroy_process_group()


def all_sum(values: list[float], processes: Processes, device: torch.device) -> list[float]:
    """``values`` summed over all processes (unchanged in a single process)."""
    if not processes.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return [float(v) for v in tensor.tolist()]


def shard(count: int, processes: Processes, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """This process's rows (and a mask of real, not padding, rows), equal length on all.

    The rows are those a :class:`~torch.utils.data.distributed.DistributedSampler` gives
    this rank for epoch 0: shuffled with ``seed``, padded by repeating the first rows so
    every process has as many, then every ``world``-th. Each process decodes only its shard
    into its cache, once, and shuffles within it each epoch.
    """
    if not processes.distributed:
        return np.arange(count), np.ones(count, dtype=bool)
    rows: torch.utils.data.Dataset[int] = cast("torch.utils.data.Dataset[int]", range(count))
    sampler: DistributedSampler[int] = DistributedSampler(
        rows, num_replicas=processes.world, rank=processes.rank, shuffle=True, seed=seed
    )
    mine = np.fromiter(iter(sampler), dtype=np.int64, count=len(sampler))
    real = np.arange(processes.rank, len(sampler) * processes.world, processes.world) < count
    return mine, real
