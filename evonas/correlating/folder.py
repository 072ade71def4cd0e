"""A correlate output folder: score into it (new, resumed or one shard), or merge shard folders into one.

Shards split the cells by position (``store.shard_positions``); each shard folder holds its
store and manifest only. Merging checks the folders measure the same thing with the same
scoring keys, joins their stores and writes the statistics, so the result equals one
unsharded run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from evonas.correlating.report import write_outputs
from evonas.correlating.runner import CorrelateSettings, cell_params, correlate, stored_run
from evonas.correlating.store import MANIFEST, Manifest, ScoreStore, identity, make_manifest, run_label, shard_positions
from evonas.errors import EvonasError
from search_spaces.benchmark import Cell


def correlate_into(
    out: Path,
    cells: Sequence[Cell],
    settings: CorrelateSettings,
    record: dict[str, Any],
    *,
    resume: bool = False,
    shard: tuple[int, int] = (0, 1),
    progress: Callable[[str, int], None] | None = None,
    executor: str = "local",
    workers: int | None = None,
    calibration_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any] | None:
    """Score into ``out`` what its store lacks; the summary, or None for one shard of several (merge those).

    ``record`` is what summary.json says about the call. A resume must measure the same thing
    (space, cells, estimators, seeds, shard); changed scoring settings or code re-score only
    the runs they change.
    """
    expected = identity(settings.space, cells, settings.estimators, settings.score_seeds)
    if resume:
        if not (out / MANIFEST).is_file():
            raise EvonasError(f"{out} has no {MANIFEST}: nothing to resume (drop --resume to start it there)")
        found = Manifest.read(out)
        found.check_same(expected, out, "resume")
        if found.shard != shard:
            raise EvonasError(f"cannot resume: {out} is shard {found.shard[0]}/{found.shard[1]}, "
                              f"not {shard[0]}/{shard[1]}; pass --shard {found.shard[0]}/{found.shard[1]}")
    store = ScoreStore.open(out, resume)
    resolved: dict[str, dict[str, Any]] = {}

    def write_manifest(runs: dict[str, dict[str, Any]], full: dict[str, Any]) -> None:
        resolved.update(runs)
        make_manifest(settings.space, cells, settings.estimators, settings.score_seeds, shard, runs, full).write(out)

    try:
        runs, data = correlate(
            cells, settings, progress, executor, workers, calibration_progress, store=store,
            positions=shard_positions(len(cells), shard), on_resolved=lambda runs: write_manifest(runs, record),
        )
    finally:
        store.close()
    full = {**record, "data": data, "shard": list(shard)}
    write_manifest(resolved, full)
    if shard[1] > 1:
        return None
    return write_outputs(out, cells, runs, full)


def merge_folders(out: Path, folders: Sequence[Path]) -> dict[str, Any]:
    """Join the stores of ``folders`` (shards of any count, or whole runs) into ``out`` and write its statistics."""
    if not folders:
        raise EvonasError("--merge needs at least one folder made by `evonas correlate`")
    manifests = [Manifest.read(folder) for folder in folders]
    first = manifests[0]
    for folder, manifest in zip(folders[1:], manifests[1:]):
        manifest.check_same(first.data, folder, f"merge with {folders[0]}")
        for label, key in first.keys().items():
            if manifest.keys().get(label) != key:
                raise EvonasError(f"cannot merge: {folder} scored {label} with other settings or code than "
                                  f"{folders[0]}; resume it with the same flags first")
    if "data" not in first.data["record"]:
        raise EvonasError(f"cannot merge: {folders[0]} is unfinished (was it killed?); resume it with --resume first")
    cells = first.cells
    store = ScoreStore.merged(folders)
    everything = range(len(cells))
    pairs = [(name, seed) for name in first.data["estimators"] for seed in first.data["seeds"]]
    recorded = {pair: first.data["runs"][run_label(*pair)] for pair in pairs}
    for (name, seed), run in recorded.items():
        label = run_label(name, seed)
        missing = store.missing(run["key"], everything)
        if missing:
            raise EvonasError(f"cannot merge: {len(missing)} of {len(cells)} cells have no {label} score in these "
                              f"folders (first: cell {missing[0]}); is a shard missing or unfinished?")
    ScoreStore.open(out, resume=False).close()  # refuses a folder that holds a run
    store.write_all(out)
    record = {**first.data["record"], "shard": [0, 1], "merged": [str(f) for f in folders]}
    make_manifest(first.data["space"], cells, first.data["estimators"], first.data["seeds"], (0, 1),
                  first.data["runs"], record).write(out)
    params = cell_params(first.data["space"], cells, record["dataset"])
    runs = [stored_run(store, run["key"], name, seed, run["settings"], everything, params)
            for (name, seed), run in recorded.items()]
    return write_outputs(out, cells, runs, record)
