"""Every progress display, in one place (the CLI and the Python API share them): the console, a
counted bar, the search bar, training bars."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from rich.console import Console

console = Console()


def _columns(*extra: Any) -> tuple[Any, ...]:
    """Description, bar, done/total, then ``extra`` (the default: time remaining)."""
    return (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *(extra or (TimeRemainingColumn(),)))


@contextlib.contextmanager
def counted() -> Iterator[Progress]:
    """A transient bar display for counted work (calibration, scoring cells, epochs)."""
    with Progress(*_columns(), console=console, transient=True) as bar:
        yield bar


class SearchBar:
    """The search's bar: evaluations, best score, rate, cache hits; plus the calibration bar."""

    def __init__(self) -> None:
        self.bar = Progress(
            *_columns(TextColumn("best {task.fields[best]}"), TextColumn("{task.fields[rate]} eval/s"),
                      TextColumn("cache {task.fields[hits]}"), TimeElapsedColumn()),
            console=console, transient=True,
        )
        self.task: Any = None
        self.calib: Any = None

    def __enter__(self) -> "SearchBar":
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.bar.stop()

    def calibrating(self, done: int, total: int) -> None:
        if self.calib is None:
            self.calib = self.bar.add_task("calibrating interval", total=total, best="-", rate="-", hits="-")
        self.bar.update(self.calib, completed=done)

    def update(self, p: Any) -> None:  # p: evonas.searching.Progress
        fields = {"best": f"{p.best:.6g}" if p.best is not None else "-", "rate": f"{p.rate:.2f}",
                  "hits": f"{p.cache_hit_rate:.0%}"}
        if self.task is None:
            self.task = self.bar.add_task("searching", total=p.budget, **fields)
        self.bar.update(self.task, completed=p.evaluations, **fields)


class TrainBars:
    """`evonas train` progress: a bar per epoch, then one summary line per finished epoch."""

    def __init__(self, progress: Progress) -> None:
        self.progress, self.label, self.epochs, self.task = progress, "", 0, None

    def start(self, label: str, epochs: int, first_epoch: int) -> None:
        self.label, self.epochs = label, epochs
        if first_epoch:
            self.progress.console.print(f"{label}: resuming after epoch {first_epoch}/{epochs}")

    def epoch_start(self, epoch: int, batches: int) -> None:
        self.task = self.progress.add_task(f"{self.label} epoch {epoch + 1}/{self.epochs}", total=batches)

    def batch_end(self) -> None:
        self.progress.advance(self.task)

    def epoch_end(self, m: dict) -> None:
        self.progress.remove_task(self.task)
        self.progress.console.print(
            f"{self.label} epoch {int(m['epoch'])}/{self.epochs}: train loss {m['train_loss']:.3f} "
            f"acc {m['train_accuracy']:.2f}%  test loss {m['test_loss']:.3f} acc {m['test_accuracy']:.2f}%  "
            f"lr {m['lr']:.4g}  {m['images_per_second']:,.0f} img/s"
        )


@contextlib.contextmanager
def training() -> Iterator[TrainBars]:
    """A transient display wrapped as the trainer's progress hooks."""
    with counted() as bar:
        yield TrainBars(bar)
