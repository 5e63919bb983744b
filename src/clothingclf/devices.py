"""Where a model runs: the ``device`` argument of the estimator, ``load`` and ``pretrained``."""

from __future__ import annotations

import torch

from .exceptions import InvalidParameterError

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device) -> torch.device:
    """The :class:`torch.device` that ``device`` names, checked to exist on this machine.

    Args:
        device: ``"auto"`` (CUDA if available, else the CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:<n>"``, ``"mps"`` where available, or a :class:`torch.device`.

    Raises:
        InvalidParameterError: Not a device name, or a device this machine lacks.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise InvalidParameterError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:<n>' or a torch.device; found "
            f"{device!r} ({error})."
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError(
            f"device {device!r} was asked for but CUDA is not available here; use "
            "device='cpu' or 'auto'."
        )
    if resolved.type not in ("cpu", "cuda"):
        available = resolved.type == "mps" and torch.backends.mps.is_available()
        if not available:
            raise InvalidParameterError(
                f"device {device!r} is not available on this machine (clothingclf runs on "
                "'cpu' and 'cuda'); use device='cpu' or 'auto'."
            )
    return resolved
