"""Weights as data: torchvision enums and names, downloads through torch's cache, local files.

The sources of :mod:`clothingclf.backbones` share these: which local file a ``weights``
argument names, which torchvision enum member, and loading a ``state_dict`` file into a
feature extractor.
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..exceptions import WeightsUnavailableError, first_line

Weights = Any  # a torchvision WeightsEnum, its name, a path, or None


def local_weights_path(weights: Weights) -> Path | None:
    """The local file ``weights`` names (a path, or a string that looks like one), else None."""
    if isinstance(weights, os.PathLike):
        return Path(weights)
    if isinstance(weights, str) and (
        os.sep in weights
        or "/" in weights
        or weights.endswith((".pth", ".pt", ".bin", ".ckpt", ".safetensors"))
        or Path(weights).is_file()
    ):
        return Path(weights)
    return None


def weights_enum(name: str, weights: Weights) -> Any:
    """The torchvision weights enum member of model ``name`` that ``weights`` names (None
    for None)."""
    from torchvision.models import get_model_weights

    if weights is None:
        return None
    enum_class = get_model_weights(name)
    if isinstance(weights, enum_class):
        return weights
    if isinstance(weights, str):
        key = weights.split(".")[-1]
        if key == "DEFAULT" or key in enum_class.__members__:
            return enum_class[key]
        names = ", ".join(dict.fromkeys(["DEFAULT", *enum_class.__members__]))
        raise WeightsUnavailableError(
            f"torchvision has no weights {weights!r} for {name!r}; expected one of {names}, "
            "None (random initialisation) or the path of a local state_dict file."
        )
    raise WeightsUnavailableError(
        f"weights for {name!r} must be a {enum_class.__name__}, its name, None or a file path; "
        f"found {type(weights).__name__}."
    )


def download(weights: Any, name: str) -> dict[str, Any]:
    """The ``state_dict`` of a torchvision weights enum member, through torch's cache."""
    url = str(weights.url)
    file_name = url.rsplit("/", 1)[-1]
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        return torch.hub.load_state_dict_from_url(
            url, map_location="cpu", progress=True, check_hash=True, weights_only=True
        )
    except (urllib.error.URLError, OSError, ConnectionError, TimeoutError) as error:
        raise WeightsUnavailableError(
            f"Could not download the {name} weights {type(weights).__name__}.{weights.name} "
            f"from {url} ({type(error).__name__}: {error}). Without network access, either "
            f"copy that file as {str(cache / file_name)!r} (torch's cache, $TORCH_HOME/hub/"
            "checkpoints), or pass weights='/path/to/state_dict.pth' for a local file, or "
            "weights=None to start from random weights."
        ) from error
    except RuntimeError as error:  # a truncated or hash-mismatched cached file
        raise WeightsUnavailableError(
            f"The cached {name} weights file {str(cache / file_name)!r} could not be read "
            f"({error}). Delete it so it is downloaded again, or pass weights=None or a path."
        ) from error


def _read_state_dict(path: Path) -> Any:
    """A safetensors file's tensors, or what ``torch.load(weights_only=True)`` reads (which
    refuses every object that could run code; torch >= 2.10, see SECURITY.md)."""
    with path.open("rb") as stream:
        head = stream.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def load_local(module: nn.Module, path: Path, *, drop_prefixes: tuple[str, ...]) -> None:
    """Load a local state_dict into ``module``, ignoring the old classifier's keys."""
    if not path.is_file():
        raise WeightsUnavailableError(
            f"The weights file {str(path)!r} does not exist. Pass the path of a state_dict "
            "saved with torch.save(model.state_dict(), path), a weights name, or None."
        )
    try:
        loaded = _read_state_dict(path)
    except Exception as error:
        raise WeightsUnavailableError(
            f"The weights file {str(path)!r} could not be read as a state_dict "
            f"({type(error).__name__}: {first_line(error)}). "
            "Expected a safetensors file or one written by torch.save(model.state_dict(), path)."
        ) from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise WeightsUnavailableError(
            f"The weights file {str(path)!r} holds a {type(loaded).__name__}, not a state_dict "
            "(a dict of tensors). Save it with torch.save(model.state_dict(), path)."
        )
    state = {str(k).removeprefix("module."): v for k, v in loaded.items()}
    if state and all(k.startswith(("features.", "head.")) for k in state):
        state = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    state = {
        k: v for k, v in state.items() if not any(k.startswith(p + ".") for p in drop_prefixes)
    }
    result = module.load_state_dict(state, strict=False)
    problems = list(result.missing_keys) + list(result.unexpected_keys)
    if problems:
        raise WeightsUnavailableError(
            f"The weights file {str(path)!r} does not fit this architecture: "
            f"{len(result.missing_keys)} missing keys (e.g. {result.missing_keys[:3]}), "
            f"{len(result.unexpected_keys)} unexpected keys (e.g. {result.unexpected_keys[:3]}). "
            "Check that the file was saved from the same backbone."
        )
