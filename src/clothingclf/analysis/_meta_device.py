"""Models on the ``meta`` device: shapes without data, so that tracing costs no memory.

Parameters and buffers can be created on ``meta`` while a model is built
(:func:`_parameters_on_meta`, what :func:`~clothingclf.analysis.meta_model` uses), or a
built model can be copied there (:func:`_meta_copy`). A model that cannot run on ``meta``
is traced for real, on a plain copy (:func:`_plain_copy`), so that the caller's model is
never changed.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__: list[str] = []


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Make every parameter and buffer registered inside the block live on ``meta``.

    Unlike ``with torch.device("meta")``, other tensors are still real, so a constructor
    that computes its layer widths with torch (RegNet) still works.
    """
    register_parameter = nn.Module.register_parameter
    register_buffer = nn.Module.register_buffer

    def on_meta_parameter(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(self, name, param)

    def on_meta_buffer(
        self: nn.Module, name: str, tensor: torch.Tensor | None, persistent: bool = True
    ) -> None:
        if tensor is not None and tensor.device.type != "meta":
            tensor = tensor.to("meta")
        register_buffer(self, name, tensor, persistent)

    nn.Module.register_parameter = on_meta_parameter  # type: ignore[method-assign]
    nn.Module.register_buffer = on_meta_buffer  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
        nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]


def _meta_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose parameters and buffers are on ``meta`` (no data copied)."""
    memo: dict[int, Any] = {}
    for param in model.parameters():
        memo[id(param)] = nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=False)
    for buffer in model.buffers():
        memo[id(buffer)] = torch.empty_like(buffer, device="meta")
    for tensor in _cached_tensors(model):
        memo.setdefault(id(tensor), torch.empty_like(tensor, device="meta"))
    return copy.deepcopy(model, memo)


def _plain_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model``; tensors it caches outside its parameters and buffers (which
    deepcopy refuses when they were computed with gradients) are copied detached."""
    memo: dict[int, Any] = {id(t): t.detach().clone() for t in _cached_tensors(model)}
    return copy.deepcopy(model, memo)


def _cached_tensors(model: nn.Module) -> list[torch.Tensor]:
    """Tensors that modules keep as plain attributes or in dicts and lists of them (timm's
    LeViT, EfficientFormer and TinyViT cache attention biases so after a forward pass)."""
    found: list[torch.Tensor] = []

    def collect(value: Any, depth: int) -> None:
        if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
            found.append(value)
        elif depth < 3 and isinstance(value, dict):
            for item in value.values():
                collect(item, depth + 1)
        elif depth < 3 and isinstance(value, (list, tuple)):
            for item in value:
                collect(item, depth + 1)

    for module in model.modules():
        for key, value in vars(module).items():
            if key not in ("_parameters", "_buffers", "_modules"):
                collect(value, 0)
    return found
