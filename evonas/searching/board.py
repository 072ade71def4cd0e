"""TensorBoard view of a search (``tb/``): fitness curves, speed, cache hits, best cell, front hypervolume, hparams."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from torch.utils.tensorboard import SummaryWriter


#: Per-evaluation scalars are written at most this often, and always at a checkpoint and at the
#: end: at thousands of evaluations per second one event per evaluation costs more than the search.
SCALAR_INTERVAL_S = 0.5


class Board:
    """Writes one run's TensorBoard events; ``purge_step`` drops what a kill left past the checkpoint."""

    def __init__(self, tb_dir: Path, purge_step: int | None = None, interval: float = SCALAR_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.writer = SummaryWriter(str(tb_dir), purge_step=purge_step)
        self.interval, self.clock = interval, clock
        self._pending: tuple[Any, ...] | None = None
        self._written_at = -math.inf

    def step(self, step: int, stats: Callable[[], dict[str, float] | None], best_so_far: float | None,
             rate: float, hit_rate: float) -> None:
        """Per-evaluation scalars; ``stats()`` summarises the current population (None before any).

        The latest values are kept and written once ``interval`` has passed since the last write;
        ``stats`` is called only then (the summary is the costly part).
        """
        self._pending = (step, stats, best_so_far, rate, hit_rate)
        if self.clock() - self._written_at >= self.interval:
            self.flush()

    def flush(self) -> None:
        """Write the latest per-evaluation scalars now, if any are waiting."""
        if self._pending is None:
            return
        step, summarise, best_so_far, rate, hit_rate = self._pending
        self._pending, self._written_at = None, self.clock()
        stats = summarise()
        if stats:
            for name in ("best", "mean", "median"):
                self.writer.add_scalar(f"fitness/{name}", stats[name], step)
        if best_so_far is not None:
            self.writer.add_scalar("fitness/best_so_far", best_so_far, step)
        self.writer.add_scalar("speed/evaluations_per_second", rate, step)
        self.writer.add_scalar("cache/hit_rate", hit_rate, step)

    def hypervolume(self, step: int, value: float) -> None:
        """Hypervolume of the run's Pareto front (reference: the worst of each objective in the first P cells)."""
        self.writer.add_scalar("front/hypervolume", value, step)

    def histogram(self, step: int, scores: Iterable[float]) -> None:
        """The population's scores (at each checkpoint, which also flushes the latest scalars)."""
        self.flush()
        values = np.fromiter(scores, dtype=np.float64)
        if values.size:
            try:
                self.writer.add_histogram("fitness/population", values, step)
            except ValueError:  # TensorBoard's fixed buckets end near 1e20; synflow on DARTS exceeds that
                self.writer.add_histogram("fitness/population", values, step, bins="auto")

    def best(self, step: int, genotype: str, score: float) -> None:
        self.writer.add_text("best/genotype", f"`{genotype}` score {score:.6g}", step)

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        clean = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()}
        self.writer.add_hparams(clean, metrics, run_name="hparams")

    def close(self) -> None:
        self.flush()
        self.writer.close()
