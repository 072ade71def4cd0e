"""Export: ONNX/TorchScript files reproduce PyTorch's logits in a Python without evonas; bad input fails cleanly."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import search_spaces
from evonas import exporting as export
from evonas.data import load_dataset, normalize
from evonas.errors import EvonasError
from evonas.exporting import FORMATS, TOLERANCE, export_trained
from evonas.training import train_genotype

NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"
DARTS = ("normal=sep3~0,skip~1|dil3~0,max3~2|avg3~1,sep5~3|skip~0,dil5~4;"
         "reduce=max3~0,sep3~1|skip~2,avg3~0|sep3~1,dil3~3|max3~0,skip~4")
TINY = {"epochs": 1, "batch_size": 16, "channels": 4, "layers": 1, "dataset": "synthetic",
        "train_images": 32, "test_images": 16}
#: DARTS with 3 cells and the auxiliary head (at cell 2), so the export must leave the head out.
TINY_DARTS = {**TINY, "layers": 3, "aux_weight": 0.4, "drop_path": 0.2}

needs_onnx = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime")),
    reason="ONNX export needs onnx, onnxscript and onnxruntime (pip install 'evonas[onnx]')")

#: Run in a fresh interpreter where importing evonas or its packages fails: the export must stand alone.
_NO_EVONAS = """
import json, sys
sys.modules['evonas'] = sys.modules['search_spaces'] = sys.modules['estimators'] = None
try:
    import evonas
except ImportError:
    pass
else:
    raise SystemExit('evonas is importable')
import numpy as np
model_path, images, expected = sys.argv[1], np.load(sys.argv[2]), np.load(sys.argv[3])
"""
_LOAD = {
    "onnx": """
import onnxruntime
session = onnxruntime.InferenceSession(model_path, providers=['CPUExecutionProvider'])
logits = session.run(None, {session.get_inputs()[0].name: images})[0]
""",
    "torchscript": """
import torch
torch.set_num_threads(1)
with torch.no_grad():
    logits = torch.jit.load(model_path)(torch.from_numpy(images)).numpy()
""",
}
_REPORT = """
print(json.dumps({'max_abs_diff': float(np.abs(logits - expected).max()),
                  'argmax_equal': bool((logits.argmax(1) == expected.argmax(1)).all())}))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny training per space, shared by the module (each takes about a second)."""
    root = tmp_path_factory.mktemp("trained")
    train_genotype("nb201", NB201, root / "nb201", TINY, device="cpu")
    train_genotype("darts", DARTS, root / "darts", TINY_DARTS, device="cpu")
    return {"nb201": root / "nb201", "darts": root / "darts"}


def _reference_logits(train_dir: Path, images: torch.Tensor) -> np.ndarray:
    """PyTorch's eval-mode logits, rebuilt here from the folder's files independently of export.py."""
    result = json.loads((train_dir / "result.json").read_text())
    recipe, space = result["recipe"], search_spaces.get(result["space"])
    options = ({"channels": recipe["channels"], "cells_per_stage": recipe["layers"]} if result["space"] == "nb201"
               else {"channels": recipe["channels"], "layers": recipe["layers"]})
    model = space.build(space.from_str(result["genotype"]), 10, **options)
    weights = torch.load(train_dir / "last.pt", weights_only=True)["model"]
    model.load_state_dict({k: v for k, v in weights.items() if not k.startswith("auxiliary_head.")})
    with torch.no_grad():
        return model.eval()(images).numpy()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("space, fmt", [
    pytest.param("nb201", "onnx", marks=needs_onnx),
    ("nb201", "torchscript"),
    pytest.param("darts", "onnx", marks=needs_onnx),
])
def test_export_reproduces_pytorch_without_evonas(trained: dict[str, Path], tmp_path: Path,
                                                  space: str, fmt: str) -> None:
    folder = trained[space]
    if space == "darts":
        assert any(k.startswith("auxiliary_head.") for k in torch.load(folder / "last.pt", weights_only=True)["model"])
    info = export_trained(folder, fmt)
    out = folder / FORMATS[fmt]
    assert Path(info["path"]) == out and out.is_file() and not _leftovers(folder)

    sidecar = json.loads(out.with_suffix(".json").read_text())
    result = json.loads((folder / "result.json").read_text())
    test = load_dataset("synthetic", "test")
    assert {k: sidecar[k] for k in ("format", "space", "genotype", "num_classes", "input_size", "test_accuracy")} == {
        "format": fmt, "space": space, "genotype": result["genotype"], "num_classes": 10,
        "input_size": [3, 32, 32], "test_accuracy": result["test_accuracy"]}
    assert (sidecar["mean"], sidecar["std"]) == (list(test.mean), list(test.std))
    assert sidecar["evonas_version"] and sidecar["weights"] == "last.pt"
    check = sidecar["check"]
    assert check["images"] == 64 and check["max_abs_diff"] <= TOLERANCE and check["argmax_equal"] is True

    # 5 images: a batch size the export never saw, so the batch axis must really be dynamic.
    images = normalize(test.images[100:105], test.mean, test.std)
    np.save(tmp_path / "images.npy", images.numpy())
    np.save(tmp_path / "expected.npy", _reference_logits(folder, images))
    proc = subprocess.run(
        [sys.executable, "-c", _NO_EVONAS + _LOAD[fmt] + _REPORT, str(out),
         str(tmp_path / "images.npy"), str(tmp_path / "expected.npy")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    reproduced = json.loads(proc.stdout.strip().splitlines()[-1])
    assert reproduced["max_abs_diff"] <= 1e-4 and reproduced["argmax_equal"], reproduced


def _copy_without_weights(trained_dir: Path, dest: Path) -> Path:
    dest.mkdir()
    for name in ("result.json", "recipe.json"):
        shutil.copy(trained_dir / name, dest / name)
    return dest


def test_folder_without_trained_weights(trained: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EvonasError, match="no finished training .*evonas train"):
        export_trained(empty, "torchscript")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(EvonasError, match=r"unfinished training; finish it with `evonas train --resume`"):
        export_trained(unfinished, "torchscript")
    no_weights = _copy_without_weights(trained["nb201"], tmp_path / "no-weights")
    with pytest.raises(EvonasError, match="no trained weights"):
        export_trained(no_weights, "torchscript")
    assert not any(empty.iterdir()) and [p.name for p in unfinished.iterdir()] == ["checkpoint.pt"]
    assert sorted(p.name for p in no_weights.iterdir()) == ["recipe.json", "result.json"]


def test_corrupt_checkpoint(trained: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy_without_weights(trained["nb201"], tmp_path / "corrupt")
    (folder / "last.pt").write_bytes(b"\x00garbage, not a checkpoint" * 10)
    with pytest.raises(EvonasError, match=r"last\.pt is not a readable checkpoint .*restore it or train again"):
        export_trained(folder, "torchscript")
    assert sorted(p.name for p in folder.iterdir()) == ["last.pt", "recipe.json", "result.json"]


def test_unknown_format(trained: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(EvonasError, match="unknown export format 'tflite'; choose onnx or torchscript"):
        export_trained(trained["nb201"], "tflite", out=tmp_path / "model.tflite")
    assert not any(tmp_path.iterdir())


def test_unwritable_output_path(trained: dict[str, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(EvonasError, match="cannot write .*choose another output path"):
        export_trained(trained["nb201"], "torchscript", out=blocker / "model.ts.pt")
    with pytest.raises(EvonasError, match="is a folder; give a file name"):
        export_trained(trained["nb201"], "torchscript", out=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


def test_onnx_packages_missing(trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The message names every missing package: onnxruntime here, and onnx/onnxscript too where the
    extra is not installed at all (the suite also runs after a plain `pip install -e '.[test]'`)."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(EvonasError, match=r"needs ([a-z]+, )*onnxruntime \(not installed\); "
                                          r"run: pip install 'evonas\[onnx\]'"):
        export_trained(trained["nb201"], "onnx", out=tmp_path / "model.onnx")
    assert not any(tmp_path.iterdir())


def test_a_failed_check_publishes_nothing(trained: dict[str, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    run = export._RUNNERS["torchscript"]
    monkeypatch.setitem(export._RUNNERS, "torchscript", lambda path, images: run(path, images) + 1e-3)
    with pytest.raises(EvonasError, match=r"does not reproduce PyTorch on 64 test images .*nothing was written"):
        export_trained(trained["nb201"], "torchscript", out=tmp_path / "model.ts.pt")
    assert not any(tmp_path.iterdir())


def test_a_diverged_network_is_refused(trained: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy_without_weights(trained["nb201"], tmp_path / "diverged")
    state = torch.load(trained["nb201"] / "last.pt", weights_only=True)
    state["model"]["classifier.bias"] = torch.full_like(state["model"]["classifier.bias"], float("nan"))
    torch.save(state, folder / "last.pt")
    with pytest.raises(EvonasError, match="outputs NaN or inf .*diverged"):
        export_trained(folder, "torchscript")
    assert sorted(p.name for p in folder.iterdir()) == ["last.pt", "recipe.json", "result.json"]
