"""Precision and memory layout of a run: bfloat16 autocast where the hardware computes in it
natively, and the channels-last layout where it is faster (the ``amp`` and
``channels_last`` run options)."""

from __future__ import annotations

from typing import Literal

import torch

from ..settings import RunOptions, resolve_options

__all__ = ["speed_settings"]


def _cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            for line in stream:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


def use_bf16(options: RunOptions, device: torch.device) -> bool:
    """Whether to train under bfloat16 autocast (``amp``)."""
    if options.amp == "off":
        return False
    if options.amp == "bf16":
        return True
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu" and _cpu_has_native_bf16()


def use_channels_last(options: RunOptions, device: torch.device, bf16: bool) -> bool:
    """Whether to put the network and its batches in the channels-last layout."""
    if options.channels_last != "auto":
        return options.channels_last == "on"
    # Measured faster in float32 and bfloat16, for ResNet-18 and EfficientNet-Lite0, on
    # the CPU (oneDNN) and on GPUs (cuDNN); see docs/performance.rst.
    del bf16
    return device.type in ("cpu", "cuda")


def speed_settings(
    device: torch.device,
    *,
    amp: Literal["auto", "bf16", "off"] = "auto",
    channels_last: Literal["auto", "on", "off"] = "auto",
) -> tuple[bool, bool]:
    """Whether to use bfloat16 autocast and the channels-last layout on ``device``.

    The rules :func:`train_model` follows (and prediction can follow): bfloat16 where the
    hardware computes in it natively, channels-last on the CPU and CUDA.

    Args:
        device: Where the network runs.
        amp: ``"auto"``, ``"bf16"`` (always) or ``"off"`` (never).
        channels_last: ``"auto"``, ``"on"`` or ``"off"``.

    Returns:
        ``(bfloat16, channels_last)``.

    Example:
        >>> speed_settings(torch.device("cpu"), amp="off", channels_last="off")
        (False, False)
    """
    options = resolve_options(amp=amp, channels_last=channels_last)
    bf16 = use_bf16(options, device)
    return bf16, use_channels_last(options, device, bf16)


# --------------------------------------------------------------------------- batches
