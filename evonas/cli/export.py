"""``evonas export``: a trained network as ONNX or TorchScript, checked against PyTorch."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from evonas.cli.app import app, say


@app.command("export")
def export_cmd(
    train_dir: Path = typer.Argument(..., help="Training folder written by `evonas train` (result.json + last.pt)."),
    fmt: str = typer.Option(..., "--format", help="onnx or torchscript."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output file (default: TRAIN_DIR/model.onnx or TRAIN_DIR/model.ts.pt); a .json sidecar goes beside it."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Dataset folder of the check images (default: the training's, else $EVONAS_DATA or the cache)."),
    check_images: int = typer.Option(64, "--check-images", min=2, help="Test images on which the export must reproduce PyTorch's logits."),
) -> None:
    """Export a trained network (eval mode, no auxiliary head) to ONNX or TorchScript, checked on test images."""
    from evonas.exporting import export_trained

    info = export_trained(train_dir, fmt, out=out, data_dir=data_dir, check_images=check_images)
    check = info["check"]
    size = "x".join(map(str, info["input_size"]))
    say(f"{info['path']}  ({info['format']}, {info['space']}, {info['num_classes']} classes, input {size})")
    say(f"check: {check['images']} test images, max |logit diff| {check['max_abs_diff']:.2g}, argmax identical")
    say(f"sidecar: {info['sidecar']}")
