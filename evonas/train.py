"""Final training of genotypes with the published recipes (DESIGN.md section 8).

``train_genotype`` trains one genotype into a folder (``recipe.json``, per-epoch atomic
``checkpoint.pt``, ``tb/``, ``best.pt``, ``last.pt``, ``result.json``) and resumes bit-exactly
from the checkpoint. ``train_top`` trains the best distinct genotypes of a search run into
``RUN_DIR/train/<rank>-<key hash>/``, several at once as Ray tasks when GPUs or workers allow.
"""
from __future__ import annotations

import hashlib
import math
import os
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol

import torch
import torch.nn.functional as F
from torch import nn

import search_spaces
from evonas.config import load_json
from evonas.errors import USER_ERRORS, EvonasError
from evonas.recipes import Recipe, recipe_from_dict, resolve_recipe
from evonas.runs import RunFolder, write_atomic
from evonas.scoring import stable_seed

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"
RECIPE = "recipe.json"
BEST = "best.pt"
LAST = "last.pt"
_CHECKPOINT_FORMAT = 1


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
            correct += (logits.argmax(1) == labels).sum()
            seen += labels.numel()
        return {"test_loss": loss_sum.item() / seen, "test_accuracy": 100.0 * correct.item() / seen}

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])


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
    if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
        raise EvonasError(f"checkpoint {path} is not an evonas training checkpoint; delete it to start over")
    return state


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda, "data": generator.get_state(), "python": random.getstate()}


def _set_rng_state(state: Mapping[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator.set_state(state["data"])
    random.setstate(state["python"])


# ---- one genotype ---------------------------------------------------------------------------
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


def _load_data(recipe: Recipe) -> tuple[Any, Any]:
    """Train split (first ``train_images``) and test split (first ``test_images``)."""
    from evonas.data import load_dataset

    train = load_dataset(recipe.dataset, split="train", data_dir=recipe.data_dir)
    test = load_dataset(recipe.dataset, split="test", data_dir=recipe.data_dir)
    for split, data, limit, flag in (("train", train, recipe.train_images, "--train-images"),
                                     ("test", test, recipe.test_images, "--test-images")):
        if limit is not None and limit > len(data):
            raise EvonasError(f"{flag} {limit} is more than the {len(data):,} images of the {recipe.dataset} {split} split")
    train = train.subset(recipe.train_images) if recipe.train_images else train
    test = test.subset(recipe.test_images) if recipe.test_images else test
    return train, test


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
    from evonas.data import iterate_batches

    progress = progress or NullProgress()
    the_space = search_spaces.get(space)
    graph = the_space.from_str(genotype)
    genotype, key = the_space.to_str(graph), the_space.canonical_key(graph)
    out = Path(out_dir) if out_dir is not None else default_out_dir(space, key)
    ckpt_path, result_path = out / CHECKPOINT, out / RESULT
    if not resume and (ckpt_path.exists() or result_path.exists()):
        raise EvonasError(f"{out} already holds a training; pass --resume to continue it or choose another --out")
    recipe = resolve_recipe(space, overrides, base=_saved_recipe(out) if resume else None)
    state = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    if state is not None:
        _check_same_run(state, genotype, recipe, ckpt_path)
        if state["epoch"] >= recipe.epochs and result_path.is_file():
            return load_json(result_path)

    train_set, test_set = _load_data(recipe)
    dev = select_device(device)
    torch.manual_seed(stable_seed(recipe.seed, "train-init", key))
    model = the_space.build(graph, train_set.num_classes, **recipe.build_options())
    trainer = Trainer(model, recipe, dev)
    if dev.type == "cuda":  # keep both splits on the GPU: batches are then indexed and augmented there
        train_set, test_set = train_set.to(dev), test_set.to(dev)
        torch.backends.cudnn.benchmark = True  # fixed shapes: autotuned kernels (resume is then not bitwise)
    image_shape = tuple(train_set.images.shape[1:])
    params, params_total, macs = model_cost(trainer.model, image_shape, dev)
    data_gen = torch.Generator().manual_seed(stable_seed(recipe.seed, "train-data", key))

    history: list[dict[str, float]] = []
    best = {"test_accuracy": -1.0, "epoch": 0}
    elapsed = 0.0
    if state is not None:
        trainer.load_state_dict(state)
        _set_rng_state(state["rng"], data_gen)
        history, best, elapsed = list(state["history"]), dict(state["best"]), float(state["elapsed"])
    first_epoch = len(history)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / RECIPE, recipe.to_dict())

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tb"), purge_step=first_epoch + 1 if first_epoch else None)
    if first_epoch == 0:
        writer.add_text("genotype", genotype, 0)
    # A final batch of one image would break BatchNorm's batch statistics; drop only that one.
    drop_last = len(train_set) % recipe.batch_size == 1
    batches_per_epoch = len(train_set) // recipe.batch_size + (0 if drop_last or len(train_set) % recipe.batch_size == 0 else 1)
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
            elapsed += time.perf_counter() - t0
            history.append(metrics)
            # TensorBoard before the checkpoint: a resume purges what a kill left past the checkpoint.
            for name in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr", "images_per_second"):
                writer.add_scalar(name.replace("_", "/", 1) if name.startswith(("train_", "test_")) else name,
                                  metrics[name], epoch + 1)
            writer.flush()
            if metrics["test_accuracy"] > best["test_accuracy"]:
                best = {"test_accuracy": metrics["test_accuracy"], "epoch": epoch + 1}
                save_torch(out / BEST, {"model": trainer.model.state_dict(), **best})
            save_torch(ckpt_path, {
                "format": _CHECKPOINT_FORMAT, "epoch": epoch + 1, "space": space, "genotype": genotype,
                "key": key, "recipe": recipe.to_dict(), **trainer.state_dict(), "rng": _rng_state(data_gen),
                "history": history, "best": best, "elapsed": elapsed,
            })
            progress.epoch_end(metrics)
    finally:
        writer.close()

    last = history[-1]
    save_torch(out / LAST, {"model": trainer.model.state_dict(), "epoch": recipe.epochs,
                            "test_accuracy": last["test_accuracy"]})
    result = {
        "status": "ok", "space": space, "genotype": genotype, "key": key,
        "dataset": recipe.dataset, "synthetic_data": bool(getattr(train_set, "synthetic", False)),
        "test_accuracy": last["test_accuracy"], "test_loss": last["test_loss"],
        "best_test_accuracy": best["test_accuracy"], "best_epoch": best["epoch"],
        "train_accuracy": last["train_accuracy"], "train_loss": last["train_loss"],
        "parameters": params, "parameters_with_auxiliary": params_total, "flops": macs, "flops_unit": "MAC",
        "wall_seconds": elapsed, "images_per_second": _mean(h["images_per_second"] for h in history),
        "train_images": len(train_set), "test_images": len(test_set),
        "device": _device_name(dev), "precision": trainer.precision, "channels_last": trainer.channels_last,
        "torch": torch.__version__, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "out_dir": str(out), "recipe": recipe.to_dict(), "history": history,
    }
    write_atomic(result_path, result)
    return result


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else math.nan


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


# ---- the top of a search run ----------------------------------------------------------------
def _run_config(run_dir: Path) -> tuple[RunFolder, dict[str, Any]]:
    """The run folder and the settings training takes from it (space, dataset, data folder, ranking)."""
    folder = RunFolder.open(run_dir)
    recorded = folder.read_config()
    search, scoring = recorded.get("search", {}), recorded.get("scoring", {})
    space = search.get("space") or scoring.get("space")
    if not isinstance(space, str):
        raise EvonasError(f"{folder.config_path} names no search space; is {run_dir} a run made by `evonas search`?")
    return folder, {
        "space": space,
        "dataset": search.get("dataset") or scoring.get("dataset"),
        "data_dir": search.get("data_dir") or scoring.get("data_dir"),
        "higher_is_better": recorded.get("estimator", {}).get("higher_is_better", True),
    }


def top_genotypes(run_dir: str | Path, k: int) -> list[dict[str, Any]]:
    """The best ``k`` ok-scored genotypes of a run, distinct by canonical key, best first.

    Each entry: ``rank`` (1-based), ``genotype``, ``key``, ``score`` (the search's ranking,
    lower first when the run's estimator says lower is better).
    """
    from evonas.search import top_records

    if k < 1:
        raise EvonasError(f"--top must be at least 1, not {k}")
    folder, settings = _run_config(Path(run_dir))
    scored = [r for r in folder.read_history() if r.get("status") == "ok" and _finite(r.get("score"))]
    if not scored:
        raise EvonasError(f"{run_dir} has no successfully scored genotype yet; run or resume the search first")
    top = top_records(scored, k, settings["higher_is_better"])
    return [{"rank": i, "genotype": r["genotype"], "key": r["key"], "score": float(r["score"])}
            for i, r in enumerate(top, start=1)]


def _finite(score: Any) -> bool:
    return isinstance(score, (int, float)) and math.isfinite(score)


def train_top(
    run_dir: str | Path,
    k: int,
    overrides: Mapping[str, Any] | None = None,
    *,
    resume: bool = False,
    workers: int | None = None,
    address: str | None = None,
    device: str | None = None,
    progress: TrainProgress | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train the top ``k`` genotypes of a search run into ``RUN_DIR/train/<rank>-<key hash>/``.

    Dataset and data folder default to the run's. Sequential in-process unless several GPUs,
    ``workers > 1`` or a Ray ``address`` allow parallel Ray tasks (one GPU each when there are GPUs).
    Results come back in rank order, each with ``rank`` and ``score`` (the search score) added;
    ``on_result`` hears each as it finishes.
    """
    run_dir = Path(run_dir)
    candidates = top_genotypes(run_dir, k)
    config = _run_config(run_dir)[1]
    space = config["space"]
    merged = {"dataset": config.get("dataset"), "data_dir": config.get("data_dir"), **{
        name: value for name, value in (overrides or {}).items() if value is not None}}
    resolve_recipe(space, merged)  # bad settings fail here, before any training starts
    jobs = [(c, run_dir / "train" / f"{c['rank']}-{key_hash(c['key'])}") for c in candidates]

    def finish(candidate: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        result = {**result, "rank": candidate["rank"], "score": candidate["score"]}
        if on_result is not None:
            on_result(result)
        return result

    gpus = torch.cuda.device_count() if device in (None, "auto") or str(device).startswith("cuda") else 0
    parallel = min(len(jobs), workers if workers is not None else max(gpus, 1))
    if address is None and parallel <= 1:
        return [finish(c, train_genotype(space, c["genotype"], out, merged, resume=resume, device=device,
                                         progress=progress)) for c, out in jobs]
    calls = [dict(space=space, genotype=c["genotype"], out_dir=str(out), overrides=merged, resume=resume,
                  device=device) for c, out in jobs]
    results: list[dict[str, Any]] = [{} for _ in jobs]

    def done(index: int, result: dict[str, Any]) -> None:
        results[index] = finish(jobs[index][0], result) if result.get("status") == "ok" else result

    _map_on_ray(calls, workers=parallel, gpus=min(gpus, parallel), address=address, on_done=done)
    for (candidate, _), result in zip(jobs, results):
        if result.get("status") != "ok":  # the others are finished and saved; --resume skips them
            raise EvonasError(f"training rank {candidate['rank']} failed: {result['error']}")
    return results


def _train_task(call: dict[str, Any]) -> dict[str, Any]:
    """Body of one Ray task: a training without progress output; user errors come back as data."""
    try:
        return train_genotype(**call)
    except USER_ERRORS as exc:
        return {"status": "failed", "error": str(exc), "genotype": call["genotype"], "out_dir": call["out_dir"]}


def _map_on_ray(calls: list[dict[str, Any]], workers: int, gpus: int, address: str | None,
                on_done: Callable[[int, dict[str, Any]], None]) -> None:
    """Run ``_train_task`` for every call as a Ray task (one GPU each where the cluster has GPUs).

    Joins ``address`` or an already running Ray; otherwise starts a loopback-only local Ray with
    ``workers`` CPUs (or ``gpus`` GPUs) and its own temp folder, and shuts it down afterwards.
    """
    import ray

    from evonas.executors import RaySession

    session = RaySession(address=address, num_cpus=workers if gpus == 0 else None, num_gpus=gpus or None)
    try:
        on_gpu = ray.cluster_resources().get("GPU", 0) >= 1
        task = ray.remote(num_gpus=1 if on_gpu else 0, num_cpus=1, max_retries=0)(_train_task)
        index = {task.remote(call): i for i, call in enumerate(calls)}
        pending = list(index)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            on_done(index[ready[0]], ray.get(ready[0]))
    finally:
        session.close()
