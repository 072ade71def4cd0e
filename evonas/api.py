"""The Python API: ``import evonas`` and search, train, correlate, build, export, draw, report.

A small, typed front door over the same library code the CLI calls, for notebooks and
scripts. Every user error is an ``evonas.EvonasError`` with the CLI's one-line message.
Progress is a rich bar by default; pass ``progress=False`` for none, or a callable to get
the updates yourself.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar, Union

from torch import nn

import search_spaces
from estimators.sweet import CalibrationResult
from evonas import correlating
from evonas.comparing import compare_runs
from evonas.drawing import draw_genotype
from evonas.errors import EvonasError
from evonas.exporting import export_trained
from evonas.progress import SearchBar, training
from evonas.recipes import default_recipe
from evonas.reporting import write_report
from evonas.runs import RunRecord
from evonas.searching import AskTell, Progress, open_loop, resolve_settings, resume_search, start_search
from evonas.scoring import (
    ModelScore, calibrate_models, calibration_for, composite_normalisation as _composite_normalisation,
    parse_estimators, score_model,
)
from evonas.settings import ScoringSettings, SearchSettings
from evonas.training import train_genotype, train_top
from evonas.training.refine import refine_run
from evonas.trusting import TrustSettings, trust as _trust
from evonas.user_errors import USER_ERRORS

ProgressArg = Union[bool, Callable[[Progress], None]]
T = TypeVar("T")


class InputError(EvonasError):
    """A bad name, genotype or table reported by the leaf packages, as an EvonasError."""


def _user_errors(func: Callable[..., T]) -> Callable[..., T]:
    """Raise every user error as an ``EvonasError`` (same message), so one ``except`` catches them."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return func(*args, **kwargs)
        except EvonasError:
            raise
        except USER_ERRORS as exc:
            raise InputError(str(exc)) from exc
    return wrapper


@dataclass(frozen=True)
class Cell:
    """One scored cell of a run: its evaluation id, genotype string, canonical key and score."""

    id: int
    genotype: str
    key: str
    score: float


class Run:
    """A search run folder, finished or killed: its settings, history, best and top cells."""

    def __init__(self, record: RunRecord) -> None:
        self._record = record
        recorded = record.settings()
        self.settings: SearchSettings = recorded.search
        self.scoring: ScoringSettings = recorded.scoring

    @classmethod
    @_user_errors
    def load(cls, path: str | Path) -> "Run":
        """Any run folder written by ``evonas search`` or ``evonas.search``."""
        return cls(RunRecord.open(path))

    @property
    def path(self) -> Path:
        return self._record.path

    @property
    def history(self) -> list[dict[str, Any]]:
        """Every evaluation as recorded (one dict per ``history.jsonl`` line), in order."""
        return self._record.read_history()

    def top(self, k: int = 5) -> list[Cell]:
        """The best ``k`` distinct cells, best first (as ``evonas show`` ranks them)."""
        return [Cell(**entry) for entry in self._record.tally().top(k)]

    @property
    def best(self) -> Cell | None:
        top = self.top(1)
        return top[0] if top else None

    def summary(self) -> dict[str, Any]:
        """Counts, timing and completion, as ``evonas show`` prints them."""
        return self._record.summary()

    @property
    def complete(self) -> bool:
        return bool(self.summary()["complete"])

    def __repr__(self) -> str:
        best = self.best
        return (f"Run({str(self.path)!r}, {self.settings.space}/{self.settings.estimator}, "
                f"{len(self.history)} evaluations, best={best.score if best else None})")


def _search_progress(progress: ProgressArg) -> tuple[Any, Callable[[Progress], None] | None, Any]:
    """(context, per-evaluation callback, calibration callback) for the ``progress`` argument."""
    if callable(progress):
        return _Null(), progress, None
    if progress:
        bar = SearchBar()
        return bar, bar.update, bar.calibrating
    return _Null(), None, None


class _Null:
    def __enter__(self) -> "_Null":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@_user_errors
def search(space: str = "nb201", estimator: str = "sweet", budget: int | None = 500, *,
           run_dir: str | Path | None = None, runs_root: str | Path = "runs", progress: ProgressArg = True,
           **settings: Any) -> Run:
    """Run a search and return its ``Run``; ``settings`` are ``SearchSettings`` fields
    (``seed``, ``data_dir``, ``dataset``, ``workers``, ``population``, ``interval``, ...)."""
    resolved = resolve_settings(SearchSettings(space=space, estimator=estimator, budget=budget, **settings))
    context, on_step, on_calibration = _search_progress(progress)
    with context:
        path = start_search(resolved, run_dir=run_dir, runs_root=runs_root, progress=on_step,
                            interval_progress=on_calibration)
    return Run.load(path)


@_user_errors
def resume(run: Run | str | Path, progress: ProgressArg = True, **overrides: Any) -> Run:
    """Continue a stopped or killed run; only budget, time limit and executor settings may change."""
    context, on_step, _ = _search_progress(progress)
    with context:
        path = resume_search(run.path if isinstance(run, Run) else run, overrides, progress=on_step)
    return Run.load(path)


@_user_errors
def ask_tell(folder: str | Path, space: str | None = None, strategy: str | None = None, *, seed: int | None = None,
             **settings: Any) -> AskTell:
    """An ask/tell loop for cells you evaluate yourself: ``g = loop.ask()`` ... ``loop.tell(g, score)``.

    Every tell is durable in ``folder`` (a run folder); calling this again on the same folder
    continues exactly (asks never told come back first). ``settings``: ``population``, ``sample``,
    ``warmup``, ``cost_objectives``, ``higher_is_better``, ``dataset``; None means the default, or
    on a reopen the recorded value. ``strategy`` is any ``--algorithm`` name (default aging).
    """
    return open_loop(folder, space=space, strategy=strategy, seed=seed, **settings)


@_user_errors
def train(run: Run | str | Path | None = None, top: int = 1, *, space: str | None = None,
          genotype: str | None = None, out: str | Path | None = None, resume: bool = False,
          device: str | None = None, progress: bool = True, **overrides: Any) -> list[dict[str, Any]]:
    """Train a run's ``top`` cells, or one ``genotype`` of ``space``, with the published recipe.

    ``overrides`` are recipe settings (``epochs``, ``batch_size``, ``lr``, ``train_images``, ...).
    Returns each training's ``result.json`` content, best first.
    """
    if (run is None) == (genotype is None):
        raise EvonasError("give either a run (evonas.train(run, top=K)) or space= and genotype=")
    with training() if progress else _Null() as bars:
        hooks = bars if progress else None
        if run is None:
            if space is None:
                raise EvonasError("genotype= needs space=")
            return [train_genotype(space, genotype, out, overrides, resume=resume, device=device, progress=hooks)]
        path = run.path if isinstance(run, Run) else Path(run)
        return train_top(path, top, overrides, resume=resume, device=device, progress=hooks)


@_user_errors
def refine(run: Run | str | Path, top: int = 4, epochs: int = 2, *, halving: bool = False, workers: int | None = None,
           device: str | None = None, progress: bool = True, **overrides: Any) -> dict[str, Any]:
    """Train the run's ``top`` best cells for ``epochs`` and keep the best by that accuracy (``refine.json``).

    ``halving``: successive halving (the better half goes on with twice the epochs); ``overrides`` are
    recipe settings (``train_images``, ``batch_size``, ...). Rerunning with the same settings resumes.
    """
    path = run.path if isinstance(run, Run) else Path(run)
    with training() if progress else _Null() as bars:
        return refine_run(path, top, epochs, halving=halving, overrides=overrides, workers=workers, device=device,
                          progress=bars if progress else None)


@_user_errors
def correlate(space: str = "nb201", estimators: Sequence[str] | str = ("sweet",), *, sample: int | None = None,
              truth: str | Path | None = None, archs_file: str | Path | None = None, seed: int = 0,
              truth_column: str = "cifar10_test", dataset: str = "cifar10", data_dir: str | None = None,
              batch_size: int = 64, interval: tuple[float, float] | None = None,
              out: str | Path | None = None, seeds: Sequence[int] | None = None,
              resume: bool = False) -> dict[str, dict[str, Any]]:
    """Spearman, Kendall, top-10% precision (and more) of each estimator against true accuracy.

    Returns ``{estimator: statistics}`` (with several ``seeds``: their mean, ``std`` and
    ``seeds``). With ``out`` the scores go to its store as they come (``resume`` continues
    it) and scores.csv, summary.json and plots are written there.
    """
    names = parse_estimators(estimators if isinstance(estimators, str) else ",".join(estimators))
    cells = correlating.load_cells(space, truth=truth, archs_file=archs_file, sample=sample, seed=seed,
                                   column=truth_column)
    settings = correlating.CorrelateSettings(space, tuple(names), seed, dataset, data_dir, batch_size, interval,
                                             tuple(seeds) if seeds else None)
    if out is not None:
        record = {"space": space, "n": len(cells), "dataset": dataset, "seeds": list(settings.score_seeds)}
        return correlating.correlate_into(Path(out), cells, settings, record, resume=resume)["results"]
    runs, _ = correlating.correlate(cells, settings)
    return correlating.run_results(cells, runs)


@_user_errors
def trust(space: str = "nb201", estimators: Sequence[str] | str = ("sweet", "synflow", "nwot"), *, sample: int = 20,
          epochs: int = 1, images: int | None = None, test_images: int | None = None,
          train_batch_size: int | None = None, seed: int = 0, truth: str | Path | None = None,
          truth_column: str = "cifar10_test", dataset: str = "cifar10", data_dir: str | None = None,
          batch_size: int = 64, interval: tuple[float, float] | None = None, out: str | Path | None = None,
          executor: str = "local", workers: int | None = None, address: str | None = None,
          device: str | None = None) -> dict[str, Any]:
    """Train ``sample`` seeded cells briefly and rank the estimators (and params/flops) against that accuracy.

    Returns ``trust.json``'s content: ``ranking`` (best first), ``recommendation``, ``caveat``, ``warning``,
    ``cells`` and, with ``truth``, ``versus_table``. Calling it again with the same ``out`` continues the
    folder (only missing trainings and scores are computed).
    """
    names = parse_estimators(estimators if isinstance(estimators, str) else ",".join(estimators))
    settings = TrustSettings(
        space=space, estimators=tuple(names), sample=sample, epochs=epochs, images=images, test_images=test_images,
        train_batch_size=train_batch_size, seed=seed, dataset=dataset, data_dir=data_dir, batch_size=batch_size,
        interval=interval, truth=str(truth) if truth else None, truth_column=truth_column, executor=executor,
        workers=workers, address=address, device=device,
    )
    return _trust(settings, Path(out) if out else Path("runs") / time.strftime("trust-%Y%m%d-%H%M%S"))


@_user_errors
def compare(runs: Sequence[Run | str | Path], truth: str | Path,
            budgets: dict[str, Sequence[float]] | None = None) -> dict[str, Any]:
    """Several search runs against their space's table: the returned cells' true accuracy and gap to the
    best feasible cell, the fronts' regret per budget (stored units) and hypervolume ratio, over the runs."""
    return compare_runs([r.path if isinstance(r, Run) else Path(r) for r in runs], truth, budgets)


@_user_errors
def score(model: nn.Module, estimator: str = "sweet", *, data: Any = None, batches: Sequence[Any] | None = None,
          interval: tuple[float, float] | None = None, batch_size: int = 64, seed: int = 0,
          settings: dict[str, Any] | None = None, normalisation: dict[str, Any] | None = None,
          device: str = "cpu", data_dir: str | None = None) -> ModelScore:
    """A zero-cost score of any ``nn.Module`` with image inputs (scored as a deep copy: yours is untouched).

    Images come from ``data`` (a dataset name or ``ImageDataset``; the search's fixed batches)
    or ``batches=[(images, labels), ...]``. The Sweetimator family needs ``interval`` (from
    ``calibrate``); a composite needs ``normalisation`` (from ``composite_normalisation``).
    Returns ``score``, ``status`` ("ok"/"failed"), ``reason``, ``seconds``, ``settings``.
    """
    if normalisation is not None:
        settings = {**(settings or {}), "normalisation": normalisation}
    return score_model(model, estimator, data=data, batches=batches, interval=interval, batch_size=batch_size,
                       seed=seed, settings=settings, device=device, data_dir=data_dir)


@_user_errors
def calibrate(models: Sequence[nn.Module] | None = None, *, space: str | None = None, data: Any = None,
              batches: Sequence[Any] | None = None, batch_size: int = 64, seed: int = 0, depth_units: Any = None,
              num_archs: int = 100, device: str = "cpu", data_dir: str | None = None) -> CalibrationResult:
    """The Sweetimator interval (``.interval``) and every bin's mean depth trend (``.means``).

    On your ``models`` (``depth_units``: a function model -> modules, or submodule names; default
    the top-level children holding Conv/Linear weights less the first and last), or on the
    first ``num_archs`` cells of a registered ``space`` (cached, like ``evonas calibrate``).
    """
    if (models is None) == (space is None):
        raise EvonasError("give models=[...] or space=NAME to calibrate on, one of the two")
    if models is not None:
        return calibrate_models(models, data=data, batches=batches, batch_size=batch_size, seed=seed,
                                depth_units=depth_units, device=device, data_dir=data_dir)
    if batches is not None or depth_units is not None:
        raise EvonasError("a space's calibration draws its own batch and knows its depth units; "
                          "give data= (a dataset name) without batches= or depth_units=")
    name = data or "cifar10"
    loaded = None if isinstance(name, str) else name
    return calibration_for(space, getattr(loaded, "name", name), data_dir, batch_size, seed, num_archs,
                           device=device, data=loaded).result


@_user_errors
def composite_normalisation(models: Sequence[nn.Module], estimator: str, *, data: Any = None,
                            batches: Sequence[Any] | None = None, interval: tuple[float, float] | None = None,
                            batch_size: int = 64, seed: int = 0, settings: dict[str, Any] | None = None,
                            device: str = "cpu", data_dir: str | None = None) -> dict[str, dict[str, Any]]:
    """Each part's normalisation of a composite, measured on your sample of models; for ``score(normalisation=)``."""
    return _composite_normalisation(models, estimator, data=data, batches=batches, interval=interval,
                                    batch_size=batch_size, seed=seed, settings=settings, device=device,
                                    data_dir=data_dir)


@_user_errors
def build(space: str, genotype: str, num_classes: int = 10, *, proxy: bool = False, **options: Any) -> nn.Module:
    """The network of ``genotype`` as an ``nn.Module`` (default init; seed torch yourself for fixed weights).

    By default the evaluation network of the space's published recipe, without its train-only
    parts; ``proxy=True`` gives the small network the estimators score; ``options`` override either.
    """
    sp = search_spaces.get(space)
    base = sp.proxy_options() if proxy else sp.training_options(default_recipe(sp).to_dict(), inference=True)
    return sp.build(sp.from_str(genotype), num_classes, **{**base, **options})


@_user_errors
def export(train_dir: str | Path, format: str, out: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Write a trained network as ONNX or TorchScript (checked against PyTorch); returns the sidecar."""
    return export_trained(train_dir, format, out=out, **options)


@_user_errors
def draw(space: str, genotype: str, path: str | Path) -> Path:
    """Draw the cell(s) of ``genotype`` to a .png or .svg file."""
    return draw_genotype(space, genotype, path)


@_user_errors
def report(run: Run | str | Path, out: str | Path | None = None, truth: str | Path | None = None) -> Path:
    """One self-contained HTML page about a run (settings, curves, top cells, trainings)."""
    return write_report(run.path if isinstance(run, Run) else Path(run), out, truth)


__all__ = ["AskTell", "Cell", "EvonasError", "InputError", "ModelScore", "Run", "build", "calibrate", "composite_normalisation",
           "correlate", "draw", "export", "refine", "report", "resume", "score", "search", "train", "ask_tell"]
