"""Read the datasets' pickled batch files safely, with errors that name the file.

CIFAR and ImageNet16 ship as pickles; an unpickler that may only rebuild numpy arrays
keeps a tampered file (or a mirror set through an environment variable) from running code.
"""
from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from evonas.errors import DataError

_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")


def _numpy_multiarray() -> Any:
    try:
        return importlib.import_module("numpy._core.multiarray")  # numpy >= 2
    except ImportError:
        return importlib.import_module("numpy.core.multiarray")


class _ArrayUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, numbers and numpy arrays; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if module in _MULTIARRAY and name in ("_reconstruct", "scalar"):
            return getattr(_numpy_multiarray(), name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):  # how protocol-2 pickles spell bytes
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a data file never needs")


def read_batch(path: Path, fix: str) -> dict[str, Any]:
    """The dict pickled in ``path``, its keys as ``str``; ``fix`` says what to do if it is bad."""
    try:
        with open(path, "rb") as handle:
            obj = _ArrayUnpickler(handle, encoding="latin1").load()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}; {fix}") from None
    except Exception as exc:  # unpickling raises many types on corrupt input
        raise bad_file(path, f"corrupt pickle: {exc}", fix) from None
    if not isinstance(obj, dict):
        raise bad_file(path, f"it holds a {type(obj).__name__}, not a dict", fix)
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def images_and_labels(batch: dict[str, Any], path: Path, label_key: str, pixels: int,
                      fix: str) -> tuple[np.ndarray, np.ndarray]:
    """``batch[data]`` as an N x pixels uint8 array and its labels as int64, checked."""
    data = batch.get("data")
    labels = batch.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != pixels:
        shape = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise bad_file(path, f"'data' should be an N x {pixels} uint8 array, found {shape}", fix)
    if labels is None:
        raise bad_file(path, f"it has no '{label_key}' entry", fix)
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise bad_file(path, f"'{label_key}' is not a list of integers", fix) from None
    if labels.shape != (data.shape[0],):
        raise bad_file(path, f"{labels.size} labels for {data.shape[0]} images", fix)
    return data, labels


def bad_file(path: Path, why: str, fix: str) -> DataError:
    return DataError(f"{path} is not a valid dataset file ({why}); {fix}")
