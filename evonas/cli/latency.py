"""``evonas latency build|show``: the per-op latency lookup table that latency costs are predicted from."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from evonas.cli.app import app, console, say
from evonas.settings import (
    DEFAULT_DATASET,
    DEFAULT_LATENCY_BATCH,
    DEFAULT_LATENCY_DEVICE,
    DEFAULT_LATENCY_THREADS,
    DEFAULT_SPACE,
    LATENCY_BACKENDS,
    check_latency,
)

if TYPE_CHECKING:
    from evonas.costs import LatencySettings

latency_app = typer.Typer(no_args_is_help=True, help="Build or show the per-op latency lookup table.")
app.add_typer(latency_app, name="latency")


def _settings(space: str, dataset: str, device: str, batch_size: int, threads: int, statistic: str,
              backend: str) -> "LatencySettings":
    from evonas.costs import LatencySettings  # torch: imported only when a latency command runs

    return LatencySettings(space, dataset, device, backend=backend, batch_size=batch_size, threads=threads,
                           statistic=statistic)


SPACE = typer.Option(DEFAULT_SPACE, "--space", help="Search space whose ops are timed.")
DATASET = typer.Option(DEFAULT_DATASET, "--dataset", help="Dataset whose image size and classes the network has.")
DEVICE = typer.Option(DEFAULT_LATENCY_DEVICE, "--device", help="cpu or cuda[:N].")
BATCH = typer.Option(DEFAULT_LATENCY_BATCH, "--batch-size", help="Images per timed forward pass.")
THREADS = typer.Option(DEFAULT_LATENCY_THREADS, "--threads", help="CPU threads while timing.")
STATISTIC = typer.Option("median", "--statistic", help="median or min of the timing repeats (min: steadier on a busy machine).")
BACKEND = typer.Option(LATENCY_BACKENDS[0], "--backend",
                       help="torch (PyTorch eager) or onnxruntime (needs the extra evonas\\[onnx]).")


@latency_app.command("build")
def build_cmd(space: str = SPACE, dataset: str = DATASET, device: str = DEVICE, batch_size: int = BATCH,
              threads: int = THREADS, statistic: str = STATISTIC, backend: str = BACKEND,
              rebuild: bool = typer.Option(False, "--rebuild", help="Measure again even when a table is cached.")) -> None:
    """Time every distinct (op, input shape) of the space and the fixed part; cache the table."""
    from evonas.costs import latency_table
    from evonas.progress import counted

    settings = _settings(space, dataset, device, batch_size, threads, statistic, backend)
    settings.check()
    with counted() as bar:
        task = bar.add_task("timing ops", total=None)
        table, path, cached = latency_table(settings, rebuild=rebuild,
                                            progress=lambda done, total: bar.update(task, completed=done, total=total))
    say(f"{'cached' if cached else 'built'}: {len(table.ops)} ops, fixed part {table.fixed_ms:.3f} ms -> {path}")


@latency_app.command("show")
def show_cmd(space: str = SPACE, dataset: str = DATASET, device: str = DEVICE, batch_size: int = BATCH,
             threads: int = THREADS, statistic: str = STATISTIC, backend: str = BACKEND,
             genotype: Optional[str] = typer.Option(None, "--genotype", help="Also predict this cell's latency.")) -> None:
    """Print a cached table (every op's time, the fixed part) and, with --genotype, one prediction."""
    from evonas.costs import LatencyTable, table_path
    from evonas.errors import EvonasError

    check_latency(device, batch_size, threads, statistic, backend)  # reading a table needs no onnxruntime
    path = table_path(_settings(space, dataset, device, batch_size, threads, statistic, backend))
    if not path.exists():
        raise EvonasError(f"no latency table for these settings; build it with `evonas latency build --space {space}"
                          f" --device {device} --batch-size {batch_size} --threads {threads} --statistic {statistic}"
                          f" --backend {backend}`")
    table = LatencyTable.load(path)
    view = Table("ms", "input", "op", title=f"{space} on {device} ({backend}), batch {batch_size}, {threads} thread(s)")
    for key, ms in sorted(table.ops.items(), key=lambda kv: -kv[1]):
        op, _, shape = key.rpartition(" @ ")
        view.add_row(f"{ms:.4f}", shape, op if len(op) <= 90 else op[:87] + "...")
    console.print(view)
    residuals = ", ".join(f"{r:.3f}" for r in table.residuals)
    say(f"fixed part {table.fixed_ms:.3f} ms (median of whole-network minus ops: {residuals}); {path}")
    if genotype is not None:
        say(f"{genotype}: {table.predict(genotype):.3f} ms predicted")
