"""Training one genotype into a folder, resumable bit-exactly (DESIGN.md section 8).

The folder holds ``recipe.json``, a per-epoch atomic ``checkpoint.pt``, ``tb/``, ``best.pt``,
``last.pt`` and, at the end, ``result.json``. All randomness (weights, data order,
augmentation, drop-path) flows from the recipe's seed; torch's global RNG is forked around
the training, so the caller's random state is left as it was.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import torch
from torch.utils.tensorboard import SummaryWriter

import search_spaces
from evonas.data import ImageDataset, iterate_batches, load_dataset
from evonas.errors import EvonasError
from evonas.runs import write_atomic
from evonas.seeding import train_data_seed, train_init_seed
from evonas.settings import load_json
from evonas.recipes import Recipe, recipe_from_dict, resolve_recipe
from evonas.training.trainer import (
    CHECKPOINT_FORMAT,
    NullProgress,
    Trainer,
    TrainProgress,
    load_checkpoint,
    model_cost,
    rng_state,
    save_torch,
    select_device,
    set_rng_state,
)

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"
RECIPE = "recipe.json"
BEST = "best.pt"
LAST = "last.pt"
#: Scalars written to TensorBoard each epoch, under their tag.
_TB_SCALARS = {"train_loss": "train/loss", "train_accuracy": "train/accuracy", "test_loss": "test/loss",
               "test_accuracy": "test/accuracy", "lr": "lr", "images_per_second": "images_per_second"}


def key_hash(key: str) -> str:
    """A short, filesystem-safe name for a canonical key."""
    return hashlib.sha1(key.encode()).hexdigest()[:10]


def default_out_dir(space: str, key: str) -> Path:
    """Where ``evonas train --space S --genotype G`` writes without ``--out``."""
    return Path("runs") / "train" / f"{space}-{key_hash(key)}"


def _saved_recipe(out: Path) -> Recipe | None:
    path = out / RECIPE
    return recipe_from_dict(load_json(path)) if path.is_file() else None


def _check_same_run(state: Mapping[str, Any], genotype: str, recipe: Recipe, path: Path) -> None:
    """Refuse to resume a checkpoint made for another genotype or recipe (the result would be neither)."""
    if state["genotype"] != genotype:
        raise EvonasError(f"{path} belongs to genotype {state['genotype']}; use another --out for a different genotype")
    saved, now = dict(state["recipe"]), recipe.to_dict()
    saved.pop("data_dir", None), now.pop("data_dir", None)  # data may move between machines
    changed = [f"{k} {saved.get(k)} -> {now.get(k)}" for k in sorted(now) if saved.get(k) != now.get(k)]
    if changed:
        raise EvonasError(f"{path} was made with another recipe ({'; '.join(changed)}); resume without those options or use another --out")


def _load_data(recipe: Recipe) -> tuple[ImageDataset, ImageDataset]:
    """Train split (first ``train_images``) and test split (first ``test_images``)."""
    train = load_dataset(recipe.dataset, split="train", data_dir=recipe.data_dir)
    test = load_dataset(recipe.dataset, split="test", data_dir=recipe.data_dir)
    for split, data, limit, flag in (("train", train, recipe.train_images, "--train-images"),
                                     ("test", test, recipe.test_images, "--test-images")):
        if limit is not None and limit > len(data):
            raise EvonasError(f"{flag} {limit} is more than the {len(data):,} images of the {recipe.dataset} {split} split")
    train = train.subset(recipe.train_images) if recipe.train_images else train
    test = test.subset(recipe.test_images) if recipe.test_images else test
    return train, test


@contextlib.contextmanager
def _isolated(device: torch.device) -> Iterator[None]:
    """Fork torch's RNG (and on a GPU enable cuDNN autotuning) for this training only."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=devices))
        if device.type == "cuda":  # fixed shapes: autotuned kernels (a resume is then not bitwise)
            stack.enter_context(torch.backends.cudnn.flags(enabled=True, benchmark=True,
                                                           deterministic=False, allow_tf32=True))
        yield


@dataclass
class _Session:
    """The mutable state of one training between epochs (what the checkpoint holds besides the trainer)."""

    history: list[dict[str, float]]
    best: dict[str, float]
    elapsed: float


def train_genotype(
    space: str,
    genotype: str,
    out_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    resume: bool = False,
    device: str | None = None,
    progress: TrainProgress | None = None,
) -> dict[str, Any]:
    """Train ``genotype`` with the space's recipe (+ ``overrides``) and return ``result.json``'s content.

    With ``resume`` an existing checkpoint in ``out_dir`` is continued exactly (model, optimizer,
    schedule, scaler, every RNG incl. the data order); a finished folder returns its result.
    """
    the_space = search_spaces.get(space)
    graph = the_space.from_str(genotype)
    genotype, key = the_space.to_str(graph), the_space.canonical_key(graph)
    out = Path(out_dir) if out_dir is not None else default_out_dir(space, key)
    ckpt_path, result_path = out / CHECKPOINT, out / RESULT
    if not resume and (ckpt_path.exists() or result_path.exists()):
        raise EvonasError(f"{out} already holds a training; pass --resume to continue it or choose another --out")
    recipe = resolve_recipe(the_space, overrides, base=_saved_recipe(out) if resume else None)
    state = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    if state is not None:
        _check_same_run(state, genotype, recipe, ckpt_path)
        if state["epoch"] >= recipe.epochs and result_path.is_file():
            return load_json(result_path)
    train_set, test_set = _load_data(recipe)
    dev = select_device(device)
    with _isolated(dev):
        torch.manual_seed(train_init_seed(recipe.seed, key))
        options = the_space.training_options(recipe.to_dict())
        trainer = Trainer(the_space.build(graph, train_set.num_classes, **options), recipe, dev)
        if dev.type == "cuda":  # keep both splits on the GPU: batches are then indexed and augmented there
            train_set, test_set = train_set.to(dev), test_set.to(dev)
        cost = model_cost(trainer.model, tuple(train_set.images.shape[1:]), dev)
        data_gen = torch.Generator().manual_seed(train_data_seed(recipe.seed, key))
        session = _Session([], {"test_accuracy": -1.0, "epoch": 0}, 0.0)
        if state is not None:
            trainer.load_state_dict(state, ckpt_path)
            set_rng_state(state["rng"], data_gen)
            session = _Session(list(state["history"]), dict(state["best"]), float(state["elapsed"]))
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / RECIPE, recipe.to_dict())
        _run_epochs(trainer, train_set, test_set, data_gen, session, out, progress or NullProgress(),
                    {"space": space, "genotype": genotype, "key": key})
    result = _result(trainer, session, train_set, test_set, cost, out,
                     {"space": space, "genotype": genotype, "key": key})
    write_atomic(result_path, result)
    return result


def _run_epochs(trainer: Trainer, train_set: ImageDataset, test_set: ImageDataset, data_gen: torch.Generator,
                session: _Session, out: Path, progress: TrainProgress, identity: dict[str, str]) -> None:
    """Train from the session's next epoch to the recipe's last, checkpointing after each."""
    recipe, dev = trainer.recipe, trainer.device
    first_epoch = len(session.history)
    writer = SummaryWriter(str(out / "tb"), purge_step=first_epoch + 1 if first_epoch else None)
    if first_epoch == 0:
        writer.add_text("genotype", identity["genotype"], 0)
    # A final batch of one image would break BatchNorm's batch statistics; drop only that one.
    drop_last = len(train_set) % recipe.batch_size == 1
    batches_per_epoch = math.ceil(len(train_set) / recipe.batch_size) - (1 if drop_last else 0)
    eval_batch = max(2 * recipe.batch_size, 256)
    progress.start(out.name, recipe.epochs, first_epoch)
    try:
        for epoch in range(first_epoch, recipe.epochs):
            t0 = time.perf_counter()
            progress.epoch_start(epoch, batches_per_epoch)
            batches = iterate_batches(train_set, recipe.batch_size, data_gen, shuffle=True, augment=True,
                                      cutout=recipe.cutout, drop_last=drop_last, device=dev)
            metrics = trainer.train_epoch(epoch, batches, progress)
            metrics.update(trainer.evaluate(iterate_batches(test_set, eval_batch, None, shuffle=False,
                                                            augment=False, device=dev)))
            metrics["epoch"] = epoch + 1
            session.elapsed += time.perf_counter() - t0
            session.history.append(metrics)
            # TensorBoard before the checkpoint: a resume purges what a kill left past the checkpoint.
            for name, tag in _TB_SCALARS.items():
                writer.add_scalar(tag, metrics[name], epoch + 1)
            writer.flush()
            if metrics["test_accuracy"] > session.best["test_accuracy"]:
                session.best = {"test_accuracy": metrics["test_accuracy"], "epoch": epoch + 1}
                save_torch(out / BEST, {"model": trainer.model.state_dict(), **session.best})
            save_torch(out / CHECKPOINT, {
                "format": CHECKPOINT_FORMAT, "epoch": epoch + 1, **identity, "recipe": recipe.to_dict(),
                **trainer.state_dict(), "rng": rng_state(data_gen), "history": session.history,
                "best": session.best, "elapsed": session.elapsed,
            })
            progress.epoch_end(metrics)
    finally:
        writer.close()
    save_torch(out / LAST, {"model": trainer.model.state_dict(), "epoch": recipe.epochs,
                            "test_accuracy": session.history[-1]["test_accuracy"]})


def _result(trainer: Trainer, session: _Session, train_set: ImageDataset, test_set: ImageDataset,
            cost: tuple[int, int, int], out: Path, identity: dict[str, str]) -> dict[str, Any]:
    """``result.json``: accuracy, cost, speed, device and the recipe of a finished training."""
    last, recipe, dev = session.history[-1], trainer.recipe, trainer.device
    params, params_total, macs = cost
    return {
        "status": "ok", **identity,
        "dataset": recipe.dataset, "synthetic_data": bool(train_set.synthetic),
        "test_accuracy": last["test_accuracy"], "test_loss": last["test_loss"],
        "best_test_accuracy": session.best["test_accuracy"], "best_epoch": session.best["epoch"],
        "train_accuracy": last["train_accuracy"], "train_loss": last["train_loss"],
        "parameters": params, "parameters_with_auxiliary": params_total, "flops": macs, "flops_unit": "MAC",
        "wall_seconds": session.elapsed, "images_per_second": _mean(h["images_per_second"] for h in session.history),
        "train_images": len(train_set), "test_images": len(test_set),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "precision": trainer.precision, "channels_last": trainer.channels_last,
        "torch": torch.__version__, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "out_dir": str(out), "recipe": recipe.to_dict(), "history": session.history,
    }


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else math.nan
