"""A correlate output folder: score into it (new, resumed or one shard), or merge shard folders into one.

Shards split the cells by position (``store.shard_positions``); each shard folder holds its
store and manifest only. Merging checks the folders measure the same thing with the same
scoring keys, joins their stores and writes the statistics, so the result equals one
unsharded run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from evonas.correlating.report import write_outputs
from evonas.correlating.runner import (
    CorrelateSettings, EstimatorRun, cell_params, correlate, stored_run, table_runs,
)
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
    table_columns: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, Any] | None:
    """Score into ``out`` what its store lacks; the summary, or None for one shard of several (merge those).

    ``record`` is what summary.json says about the call; ``table_columns`` (values per cell, e.g.
    from ``load_table_columns``) are correlated beside the estimators as ``table:<column>``. A resume must measure the same thing
    (space, cells, estimators, seeds, shard); changed scoring settings or code re-score only
    the runs they change.
    """
    expected = identity(settings.space, cells, settings.estimators, settings.score_seeds)
    found: Manifest | None = None
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
    columns = {name: list(values) for name, values in (table_columns or {}).items()}

    def write_manifest(runs: dict[str, dict[str, Any]], full: dict[str, Any]) -> None:
        resolved.update(runs)
        make_manifest(settings.space, cells, settings.estimators, settings.score_seeds, shard, runs, full,
                      columns).write(out)

    try:
        runs, data = correlate(
            cells, settings, progress, executor, workers, calibration_progress, store=store,
            positions=shard_positions(len(cells), shard), on_resolved=lambda runs: write_manifest(runs, record),
            known_params=found.params if found is not None else None,
        )
    finally:
        store.close()
    full = {**record, "data": data, "shard": list(shard)}
    if shard[1] > 1:
        write_manifest(resolved, full)
        return None
    manifest = make_manifest(settings.space, cells, settings.estimators, settings.score_seeds, shard, resolved, full,
                             columns, runs[0].params)
    if found is not None:
        kept(found, manifest)
    manifest.write(out)
    runs += table_runs(columns, range(len(cells)), runs[0].params, table_source(record), settings.seed)
    return write_outputs(out, cells, runs, full)


def kept(found: Manifest, manifest: Manifest) -> None:
    """What a resume keeps of the manifest it continues: where imported scores came from, and the
    composite normalisation of every run whose key is unchanged (``--select`` reads it)."""
    if "imported_from" in found.data["record"]:
        manifest.data["record"]["imported_from"] = found.data["record"]["imported_from"]
    keys = manifest.keys()
    norms = {label: v for label, v in (found.data.get("normalisation") or {}).items()
             if found.keys().get(label) == keys.get(label)}
    if norms:
        manifest.data["normalisation"] = norms
        manifest.data["normalisation_reference"] = found.data.get("normalisation_reference")


def table_source(record: dict[str, Any]) -> str | None:
    """The table a folder's ``--table-columns`` were read from."""
    return record.get("archs_file") or record.get("truth")


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
    store = ScoreStore.merged(folders)
    cells = first.cells
    keys = first.keys()
    for label in (run_label(name, seed) for name in first.data["estimators"] for seed in first.data["seeds"]):
        missing = store.missing(keys[label], range(len(cells)))
        if missing:
            raise EvonasError(f"cannot merge: {len(missing)} of {len(cells)} cells have no {label} score in these "
                              f"folders (first: cell {missing[0]}); is a shard missing or unfinished?")
    ScoreStore.open(out, resume=False).close()  # refuses a folder that holds a run
    store.write_all(out)
    record = {**first.data["record"], "shard": [0, 1], "merged": [str(f) for f in folders]}
    stored = folder_runs(first, store)
    make_manifest(first.data["space"], cells, first.data["estimators"], first.data["seeds"], (0, 1),
                  first.data["runs"], record, first.table_columns, stored.params).write(out)
    return write_outputs(out, cells, stored.runs, record)


@dataclass
class StoredFolder:
    """A finished correlate folder read back: its manifest, cells, each cell's params and every run."""

    path: Path
    manifest: Manifest
    cells: list[Any]
    params: list[float]
    runs: list[EstimatorRun]

    @property
    def space(self) -> str:
        return str(self.manifest.data["space"])


def folder_runs(manifest: Manifest, store: ScoreStore, path: Path | None = None) -> StoredFolder:
    """Every (estimator, seed) run of ``manifest`` from ``store`` (all cells present), then its table columns."""
    cells = manifest.cells
    record = manifest.data["record"]
    params = manifest.params
    if params is None:
        params = cell_params(manifest.data["space"], cells, record["dataset"])
        if path is not None:  # keep them: rebuilding every network is the slow part of reading a folder
            manifest.data["params"] = params
            manifest.write(path)
    everything = range(len(cells))
    runs = [stored_run(store, manifest.data["runs"][run_label(name, seed)]["key"], name, seed,
                       manifest.data["runs"][run_label(name, seed)]["settings"], everything, params)
            for name in manifest.data["estimators"] for seed in manifest.data["seeds"]]
    runs += table_runs(manifest.table_columns, everything, params, table_source(record), int(record.get("seed", 0)))
    return StoredFolder(path or Path("."), manifest, cells, params, runs)


def read_folder(folder: Path) -> StoredFolder:
    """A finished, unsharded correlate folder (or a merge's output), for ``--from``: nothing is scored."""
    manifest = Manifest.read(folder)
    if manifest.shard != (0, 1):
        raise EvonasError(f"{folder} is shard {manifest.shard[0]}/{manifest.shard[1]}; merge the shards with "
                          "--merge first and read the merged folder")
    if "data" not in manifest.data["record"]:
        raise EvonasError(f"{folder} is unfinished (was it killed?); resume it with --resume first")
    return folder_runs(manifest, ScoreStore.merged([folder]), folder)
