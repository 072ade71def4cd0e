"""Export a trained network (a folder written by ``evonas train``) to ONNX or TorchScript.

The export is the evaluation network in eval mode: for DARTS without the train-only
auxiliary head and with drop-path off. It is checked against PyTorch on real test images
before it is published, and a JSON sidecar records what a consumer needs to feed it
(input size, normalisation) and what was checked. The weights are ``last.pt``, the network
whose accuracy ``result.json`` reports; ``best.pt`` is never used, since it was picked by
test accuracy and no longer matches the recorded number.
"""
from __future__ import annotations

import importlib
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import search_spaces
from evonas.version import __version__
from evonas.data import load_dataset, normalize
from evonas.errors import EvonasError
from evonas.recipes import recipe_from_dict
from evonas.runs import replacing
from evonas.settings import ONNX_OPSET

#: Format -> default file name inside the training folder.
FORMATS: dict[str, str] = {"onnx": "model.onnx", "torchscript": "model.ts.pt"}
#: Largest tolerated |exported - PyTorch| logit difference on the check batch.
TOLERANCE = 1e-4
INPUT_NAME, OUTPUT_NAME = "images", "logits"
_ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # torch's exporter needs onnxscript
_WEIGHTS = "last.pt"


def export_trained(train_dir: str | Path, fmt: str, out: str | Path | None = None,
                   data_dir: str | Path | None = None, check_images: int = 64) -> dict[str, Any]:
    """Export the network trained in ``train_dir``; returns the sidecar's content plus ``path`` and ``sidecar``.

    ``out`` defaults to ``TRAIN_DIR/model.onnx`` or ``TRAIN_DIR/model.ts.pt``; the sidecar is
    ``out`` with the suffix ``.json``. Both replace existing files, and only after the export
    reproduced PyTorch's logits on the first ``check_images`` test images.
    """
    if fmt not in FORMATS:
        raise EvonasError(f"unknown export format {fmt!r}; choose {' or '.join(FORMATS)}")
    if check_images < 2:
        raise EvonasError(f"check_images must be at least 2 (to check the batch axis), not {check_images}")
    if fmt == "onnx":
        _require_onnx()
    train_dir = Path(train_dir)
    result, state = _read_training(train_dir)
    out = Path(out) if out is not None else train_dir / FORMATS[fmt]
    sidecar = out.with_suffix(".json")
    if sidecar == out:
        raise EvonasError(f"{out} would be overwritten by its own .json sidecar; give the model another suffix")
    with replacing(out) as tmp_model, replacing(sidecar) as tmp_sidecar:  # the sidecar lands first
        recipe = recipe_from_dict(result["recipe"])
        test = load_dataset(recipe.dataset, split="test", download=False,
                            data_dir=data_dir or _recorded_data_dir(recipe.data_dir))
        # The first test images, normalised exactly as evaluation does.
        images = normalize(test.images[:check_images], test.mean, test.std)
        model = _eval_network(result, recipe.to_dict(), test.num_classes, state, train_dir / _WEIGHTS)
        with torch.no_grad():
            expected = model(images).numpy()
        if not np.isfinite(expected).all():
            raise EvonasError(f"the network in {train_dir} outputs NaN or inf on test images (its training "
                              "diverged); there is nothing useful to export")
        _EXPORTERS[fmt](model, images[:2], tmp_model)  # traced on 2 images, checked on all: batch is dynamic
        got = _RUNNERS[fmt](tmp_model, images.numpy())
        check = {"images": len(images), "split": "test", "tolerance": TOLERANCE,
                 "max_abs_diff": float(np.abs(got - expected).max()),
                 "argmax_equal": bool((got.argmax(1) == expected.argmax(1)).all())}
        if not (check["max_abs_diff"] <= TOLERANCE and check["argmax_equal"]):  # NaN fails too
            raise EvonasError(
                f"the {fmt} export does not reproduce PyTorch on {len(images)} test images (max |diff| "
                f"{check['max_abs_diff']:.3g}, argmax equal: {check['argmax_equal']}); nothing was written; "
                "report this with your torch version")
        info = {
            "format": fmt, "file": out.name, "space": result["space"], "genotype": result["genotype"],
            "dataset": recipe.dataset, "num_classes": test.num_classes,
            "input_size": list(test.images.shape[1:]), "input_layout": "NCHW float32 RGB",
            "mean": list(test.mean), "std": list(test.std), "preprocess": "(pixel / 255 - mean) / std per channel",
            "test_accuracy": result.get("test_accuracy"), "weights": _WEIGHTS, "epoch": state.get("epoch"),
            "evonas_version": __version__, "torch_version": torch.__version__, "check": check,
            **({"opset": ONNX_OPSET, "input_name": INPUT_NAME, "output_name": OUTPUT_NAME} if fmt == "onnx" else {}),
        }
        tmp_sidecar.write_text(json.dumps(info, indent=2) + "\n")
    return {**info, "path": str(out), "sidecar": str(sidecar)}


# ---- reading the training folder -------------------------------------------------------------
def _read_training(train_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``result.json`` and the ``last.pt`` checkpoint of a finished training, or a one-line error."""
    if not train_dir.is_dir():
        raise EvonasError(f"{train_dir} is not a folder; pass a training folder written by `evonas train`")
    result_path, weights = train_dir / "result.json", train_dir / _WEIGHTS
    if not result_path.is_file():
        unfinished = (train_dir / "checkpoint.pt").is_file()
        raise EvonasError(
            f"{train_dir} holds an unfinished training; finish it with `evonas train --resume` before exporting"
            if unfinished else
            f"{train_dir} holds no finished training (no result.json); pass a folder written by `evonas train`")
    try:
        result = json.loads(result_path.read_text())
    except (OSError, ValueError) as exc:
        raise EvonasError(f"cannot read {result_path} ({exc}); restore it or train again") from None
    missing = [k for k in ("space", "genotype", "recipe") if not isinstance(result, dict) or k not in result]
    if missing:
        raise EvonasError(f"{result_path} lacks {', '.join(missing)}; is it a result written by `evonas train`?")
    if not weights.is_file():
        raise EvonasError(f"{train_dir} has no trained weights ({_WEIGHTS} is missing); restore it or train again")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for truncated or garbled files
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise EvonasError(f"{weights} is not a readable checkpoint ({reason}); restore it or train again") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise EvonasError(f"{weights} holds no model weights; restore it or train again")
    return result, state


def _recorded_data_dir(recorded: str | None) -> str | None:
    """The training's data folder when it still exists here (data may move between machines)."""
    return recorded if recorded and Path(recorded).is_dir() else None


def _eval_network(result: dict[str, Any], recipe: dict[str, Any], num_classes: int,
                  state: dict[str, Any], weights: Path) -> nn.Module:
    """The eval-mode network with the trained weights; train-only parts (``training_options(inference=True)``
    leaves them out, e.g. DARTS' auxiliary head) are not built and their weights are not needed."""
    space = search_spaces.get(result["space"])
    graph = space.from_str(result["genotype"])
    with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the caller's RNG alone
        model = space.build(graph, num_classes, **space.training_options(recipe, inference=True))
    built = {name.partition(".")[0] for name in model.state_dict()}
    weights_dict = {k: v for k, v in state["model"].items() if k.partition(".")[0] in built}
    try:
        missing, unexpected = model.load_state_dict(weights_dict, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise EvonasError(f"{weights} does not fit the network in result.json "
                          f"({str(exc).splitlines()[-1].strip()[:160]}); restore the folder's files") from None
    if missing or unexpected:
        raise EvonasError(f"{weights} does not fit the network in result.json (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}); restore the folder's files")
    return model.eval()


# ---- the two formats ---------------------------------------------------------------------------
def _require_onnx() -> None:
    missing = []
    for name in _ONNX_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise EvonasError(f"ONNX export needs {', '.join(missing)} (not installed); run: pip install 'evonas[onnx]'")


def _export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """torch.export-based ONNX (the dynamo exporter), one self-contained file, dynamic batch axis."""
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # it warns that optional torchvision ops are not registered
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.export's internal deprecations
            torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False, verbose=False,
                              opset_version=ONNX_OPSET, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_shapes=({0: torch.export.Dim("batch")},))
    finally:
        onnx_log.setLevel(level)


def _run_onnx(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]


def _export_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """A traced module: the cells' wiring is fixed per genotype, so tracing records it exactly."""
    torch.jit.trace(model, example, check_trace=False).save(str(path))


def _run_torchscript(path: Path, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.jit.load(str(path), map_location="cpu")(torch.from_numpy(images)).numpy()


_EXPORTERS: dict[str, Callable[[nn.Module, torch.Tensor, Path], None]] = {
    "onnx": _export_onnx, "torchscript": _export_torchscript}
_RUNNERS: dict[str, Callable[[Path, np.ndarray], np.ndarray]] = {
    "onnx": _run_onnx, "torchscript": _run_torchscript}
