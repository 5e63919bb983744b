"""Label a catalogue of millions of photos on a Dask cluster (the ``dask`` extra).

Each Dask worker process loads the model once (:func:`worker_classifier` keeps it for the
life of the process) and labels whole partitions of photo paths with
:meth:`~clothingclf.predictor.Predictor.stream`, so a photo that cannot be read is
reported in its row instead of failing the partition. The rows come back in the order of
the paths, with the labels and probabilities ``predict_top`` gives in one process.

Dask was chosen over Ray Data and Spark because it is pure Python and installs from PyPI
alone (``pip install 'clothingclf[dask]'``); Spark needs a JVM, and Ray wheels are large
and tied to few Python versions.

Example (a local cluster; ``Client("tcp://scheduler:8786")`` for a real one)::

    from dask.distributed import Client, LocalCluster
    from clothingclf.catalogue import label_with_dask

    with LocalCluster(n_workers=4, threads_per_worker=1) as cluster, Client(cluster) as client:
        table = label_with_dask(paths, "model.safetensors", client=client)
    table.to_csv("labels.csv", index=False)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from .exceptions import InvalidParameterError, MissingDependencyError

__all__ = ["label_partition", "label_with_dask", "worker_classifier"]

_DASK_HINT = "Install the dask extra: pip install 'clothingclf[dask]'"


def worker_classifier(model: str | None, device: str = "cpu") -> Any:
    """The classifier of ``model`` (a model file; ``None``: the bundled model), loaded once
    per process and kept while the file is unchanged: every partition a worker labels
    reuses it (and its onnxruntime graph), and a model file replaced on disk (a retrained
    model) is loaded again."""
    if model is None:
        return _loaded(None, None, device)
    path = os.path.abspath(model)
    try:
        stat = os.stat(path)
        stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = None  # load() says what is wrong with the path
    return _loaded(path, stamp, device)


@functools.lru_cache(maxsize=4)
def _loaded(model: str | None, stamp: tuple[int, int] | None, device: str) -> Any:
    from .classifier import ClothingClassifier

    del stamp  # part of the cache key only
    if model is None:
        return ClothingClassifier.pretrained(device=device)
    return ClothingClassifier.load(model, device=device)


def label_partition(
    paths: Sequence[str],
    model: str | None = None,
    *,
    top_k: int = 1,
    device: str = "cpu",
    options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Label one partition of photo paths with the worker's classifier.

    Args:
        paths: Image files.
        model: A model file (``None``: the bundled model); the path must be readable from
            every worker.
        top_k: How many labels per photo (columns ``label``, ``score``, then
            ``label_2``, ``score_2``, ...).
        device: Where each worker runs the model.
        options: Inference options of ``predict`` (``engine``, ``batch_size``, ...).

    Returns:
        One row per path, in order: ``image``, the labels and scores, and ``error`` (empty,
        or why the photo could not be read; its labels are then empty).
    """
    predictor = worker_classifier(model, device).predictor()
    rows: list[dict[str, Any]] = []
    paths = [str(path) for path in paths]
    for index, outcome in predictor.stream(paths, **(options or {})):
        row: dict[str, Any] = {"image": paths[index]}
        if isinstance(outcome, Exception):
            row["error"] = str(outcome)
        else:
            row.update(predictor.prediction(outcome, top_k).flat())
            row["error"] = ""
        rows.append(row)
    return pd.DataFrame(rows, columns=_columns(top_k, len(predictor.classes)))


def _columns(top_k: int, classes: int) -> list[str]:
    from .inference import Prediction

    return ["image", *Prediction.flat_columns(min(top_k, classes)), "error"]


def label_with_dask(
    paths: Sequence[str | os.PathLike[str]],
    model: str | os.PathLike[str] | None = None,
    *,
    client: Any,
    partition_size: int = 1000,
    top_k: int = 1,
    device: str = "cpu",
    **options: Any,
) -> pd.DataFrame:
    """Label ``paths`` on the workers of a Dask ``client``, a partition at a time.

    Args:
        paths: Image files (readable from every worker).
        model: A model file (readable from every worker); ``None``: the bundled model.
        client: A ``dask.distributed.Client``.
        partition_size: Photos per task; each worker keeps its model between tasks, so
            larger partitions only lower the scheduling overhead.
        top_k: Labels per photo.
        device: Where each worker runs the model.
        **options: Inference options of ``predict`` (``engine``, ``batch_size``,
            ``decode_threads``, ...).

    Returns:
        The table of :func:`label_partition`, every partition in the order of ``paths``.

    Raises:
        MissingDependencyError: Dask is not installed.
        InvalidParameterError: ``partition_size`` or ``top_k`` is not a positive int, ``paths``
            is not a sequence of paths (one path alone, say), or ``client`` is not a client.
    """
    try:
        import dask.bag as db
    except ImportError:
        raise MissingDependencyError(f"label_with_dask needs Dask. {_DASK_HINT}.") from None
    for name, value in (("partition_size", partition_size), ("top_k", top_k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidParameterError(f"{name} must be a positive int; found {value!r}.")
    if isinstance(paths, (str, bytes, os.PathLike)) or not isinstance(paths, Iterable):
        raise InvalidParameterError(
            "paths must be a list (or other sequence) of image paths, one per photo; found "
            f"{type(paths).__name__}. For one photo, pass [path]."
        )
    names = []
    for index, path in enumerate(paths):
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidParameterError(
                f"paths[{index}] must be a path (str or os.PathLike); found {type(path).__name__}."
            )
        names.append(os.fspath(path))
    if not callable(getattr(client, "compute", None)):
        raise InvalidParameterError(
            "client must be a dask.distributed.Client (Client() for a local cluster); found "
            f"{type(client).__name__}."
        )
    model_path = None if model is None else os.path.abspath(os.fspath(model))
    if not names:
        return pd.DataFrame(columns=_columns(top_k, top_k))  # no model loaded to cap top_k
    bag = db.from_sequence(names, partition_size=partition_size)  # type: ignore[no-untyped-call]
    tables = bag.map_partitions(
        lambda part: [
            label_partition(list(part), model_path, top_k=top_k, device=device, options=options)
        ]
    )
    frames: list[pd.DataFrame] = client.compute(tables).result()  # a table per partition
    return pd.concat(frames, ignore_index=True)
