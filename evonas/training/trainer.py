"""The training loop and its files: one model, SGD with a cosine schedule, mixed precision
and channels-last on a GPU, and checkpoints that resume bit-exactly."""
from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from evonas.errors import EvonasError
from evonas.recipes import Recipe

CHECKPOINT_FORMAT = 1


class TrainProgress(Protocol):
    """What a caller (the CLI's progress bar) hears from a training; every method is optional work."""

    def start(self, label: str, epochs: int, first_epoch: int) -> None: ...
    def epoch_start(self, epoch: int, batches: int) -> None: ...
    def batch_end(self) -> None: ...
    def epoch_end(self, metrics: dict[str, float]) -> None: ...


class NullProgress:
    """Progress that reports nothing (library use, Ray tasks)."""

    def start(self, label: str, epochs: int, first_epoch: int) -> None:
        pass

    def epoch_start(self, epoch: int, batches: int) -> None:
        pass

    def batch_end(self) -> None:
        pass

    def epoch_end(self, metrics: dict[str, float]) -> None:
        pass


# ---- device, precision, cost -------------------------------------------------------------
def select_device(name: str | None = None) -> torch.device:
    """``auto``/None: the GPU when there is one, else the CPU; an unusable choice is a user error."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise EvonasError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EvonasError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return device


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on GPUs that support it, else fp16; None (fp32) on the CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def model_cost(model: nn.Module, image_shape: tuple[int, ...], device: torch.device) -> tuple[int, int, int]:
    """(parameters of the eval network, all parameters, multiply-accumulates per image).

    Counts what one eval-mode forward touches, so a DARTS auxiliary head (train-only) is
    excluded from both numbers, as the DARTS paper reports them. MACs cover Conv2d and Linear.
    """
    called: list[nn.Module] = []
    macs = 0

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        nonlocal macs
        called.append(module)
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            macs += output[0].numel() * (module.in_channels // module.groups) * k
        elif isinstance(module, nn.Linear):
            macs += output[0].numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *image_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    used = {id(p): p.numel() for m in called for p in m.parameters(recurse=False)}
    return sum(used.values()), sum(p.numel() for p in model.parameters()), macs


def training_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, aux_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total loss incl. the weighted auxiliary loss, main cross-entropy, logits) of one batch."""
    logits = model(images)
    main = F.cross_entropy(logits, labels)
    aux = getattr(model, "aux_logits", None)
    if aux is not None and aux_weight > 0:
        return main + aux_weight * F.cross_entropy(aux, labels), main, logits
    return main, main, logits


# ---- the loop ------------------------------------------------------------------------------
class Trainer:
    """Model + SGD + per-epoch cosine schedule + (on GPU) mixed precision and channels-last."""

    def __init__(self, model: nn.Module, recipe: Recipe, device: torch.device) -> None:
        self.recipe = recipe
        self.device = device
        self.amp = amp_dtype(device)
        self.channels_last = device.type == "cuda"
        self.model = model.to(device, memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
            nesterov=recipe.nesterov, weight_decay=recipe.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=recipe.epochs, eta_min=0.0)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp == torch.float16)

    @property
    def precision(self) -> str:
        return {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}[self.amp]

    def _prepare(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels.to(self.device, non_blocking=True)

    def train_epoch(self, epoch: int, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                    progress: TrainProgress | None = None) -> dict[str, float]:
        """One pass over ``batches``; sums stay on the device so the GPU is never synced per step."""
        progress = progress or NullProgress()
        model, recipe = self.model, self.recipe
        if hasattr(model, "drop_path_prob"):
            model.drop_path_prob = recipe.drop_path_at(epoch)
        model.train()
        lr = self.optimizer.param_groups[0]["lr"]
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        start = time.perf_counter()
        for images, labels in batches:
            images, labels = self._prepare(images, labels)
            with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                loss, main, logits = training_loss(model, images, labels, recipe.aux_weight)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if recipe.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            loss_sum += main.detach() * labels.numel()
            correct += (logits.detach().argmax(1) == labels).sum()
            seen += labels.numel()
            progress.batch_end()
        if seen == 0:
            raise EvonasError("the training set yielded no batch; use more --train-images or a smaller --batch-size")
        total_loss, total_correct = loss_sum.item(), correct.item()
        seconds = time.perf_counter() - start
        self.scheduler.step()
        return {
            "train_loss": total_loss / seen, "train_accuracy": 100.0 * total_correct / seen,
            "lr": lr, "images_per_second": seen / seconds, "train_seconds": seconds,
        }

    @torch.no_grad()
    def evaluate(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        """Loss and accuracy (percent) of the eval-mode network over ``batches``."""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        for images, labels in batches:
            images, labels = self._prepare(images, labels)
            with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                logits = self.model(images)
            loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
            correct += (logits.float().argmax(1) == labels).sum()  # argmax of fp32 logits: no half-precision ties
            seen += labels.numel()
        return {"test_loss": loss_sum.item() / seen, "test_accuracy": 100.0 * correct.item() / seen}

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "precision": self.precision,
        }

    def load_state_dict(self, state: Mapping[str, Any], source: Path) -> None:
        """Continue from ``state``; a checkpoint of another precision is refused (the run would be neither)."""
        saved = state.get("precision", "fp32")  # checkpoints from v0.1.0 were fp32 on the CPU
        if saved != self.precision:
            raise EvonasError(f"{source} was trained in {saved} but this device trains in {self.precision}; "
                              f"resume on a device with the same precision or train into another --out")
        scaler = state.get("scaler") or {}
        if self.scaler.is_enabled() and not scaler:
            raise EvonasError(f"{source} has no fp16 grad-scaler state; it cannot be resumed in fp16, "
                              "train into another --out")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if scaler:
            self.scaler.load_state_dict(scaler)


# ---- files -----------------------------------------------------------------------------------
def save_torch(path: Path, obj: Any) -> None:
    """``torch.save`` through ``path.tmp`` + ``os.replace``: a kill never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``; a damaged file is a one-line user error, never a traceback."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated/garbled file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EvonasError(f"checkpoint {path} is unreadable ({reason[:120]}); delete it to start that training over") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise EvonasError(f"checkpoint {path} is not an evonas training checkpoint; delete it to start over")
    return state


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda, "data": generator.get_state(), "python": random.getstate()}


def set_rng_state(state: Mapping[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator.set_state(state["data"])
    random.setstate(state["python"])
