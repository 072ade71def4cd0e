"""Measured costs of cells read from a table (``--cost-table``), e.g. HW-NAS-Bench's device latency and energy.

A cost table is a CSV in the form of a benchmark table (``search_spaces.benchmark``: the genotype
in ``arch`` or ``genotype``) whose numeric columns are costs: ``pixel3_latency`` (ms, a name ending
in ``_latency``), ``edgegpu_energy`` (mJ, ``_energy``), anything else a plain number
(``evonas.settings.TABLE_UNITS``). A cell's cost is read from the row of its exact genotype string;
a cell without one takes the first row (in file order) of an isomorphic cell, found through the
space's benchmark-table API. Looked-up costs are kept by genotype string, not by canonical key:
isomorphic cells may differ on a real device, and a table that lists both gives each its own.

A negative entry means "not measured" (HW-NAS-Bench writes -1 for the 4,699 cells it has no Edge
TPU latency of): a cell whose needed cost is unmeasured is infeasible, with that reason in its
history line (``CostModel.unmeasured``), and stays out of the table's true front.

A cell in no row (neither its string nor an isomorphic cell) is a one-line ``EvonasError`` rather
than an infeasible cell: a search over a table that misses part of the space would otherwise
quietly become a search over the table's rows. Spaces that list every cell
(``SearchSpace.benchmark_order``) are checked for coverage before a search starts.

The file's SHA-256 is recorded with the run's settings; a resume reads the table again and refuses
a file that changed, so a resumed run compares costs from one table.
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import replace
from pathlib import Path

import search_spaces
from evonas.errors import EvonasError
from evonas.settings import SearchSettings
from search_spaces.benchmark import ARCH_COLUMNS, BenchmarkTable


class CostTable:
    """The cost columns of one table file, looked up by genotype (exact row, else an isomorphic one)."""

    def __init__(self, space: str, path: Path, text: str, sha256: str) -> None:
        self.space, self.path, self.sha256 = search_spaces.get(space), path, sha256
        reader = csv.DictReader(io.StringIO(text))
        rows = list(reader)
        header = list(reader.fieldnames or [])
        if not rows or self.space.genotype_of_row(rows[0]) is None:
            raise EvonasError(f"cost table {path} needs a header with the column(s) {self.space.genotype_columns} "
                              f"and data rows; it has: {', '.join(header) or 'nothing'}")
        self.columns = tuple(name for name in header if name not in ARCH_COLUMNS and _is_number(rows[0][name]))
        if not self.columns:
            raise EvonasError(f"cost table {path} has no numeric column besides the genotype; it needs one, "
                              "like pixel3_latency")
        self.values: dict[str, list[float]] = {name: [] for name in self.columns}  # per column, in file order
        self.genotypes = [(self.space.genotype_of_row(row) or "").strip() for row in rows]
        self._row: dict[str, int] = {}
        for index, (genotype, row) in enumerate(zip(self.genotypes, rows)):
            self._row.setdefault(genotype, index)
            for name in self.columns:
                if not _is_number(row[name]):
                    raise EvonasError(f"cost table {path} line {index + 2}: {name} {row[name]!r} is not a number")
                self.values[name].append(float(row[name]))
        self._bench: BenchmarkTable | None = None  # the isomorphic fallback, read on first need
        self._cache: dict[str, dict[str, float]] = {}

    @classmethod
    def read(cls, space: str, path: str | Path, sha256: str | None = None) -> "CostTable":
        """Read ``path`` for ``space``; with ``sha256`` (a run's record), refuse a file that has changed since."""
        path = Path(path)
        if not path.is_file():
            raise EvonasError(f"cost table {path} not found; pass an existing CSV file to --cost-table")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if sha256 is not None and digest != sha256:
            raise EvonasError(f"cost table {path} changed since the run started (SHA-256 {digest[:12]}..., "
                              f"recorded {sha256[:12]}...); restore that file or start a new run")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise EvonasError(f"cost table {path} is not a UTF-8 CSV file") from None
        return cls(space, path, text, digest)

    def __call__(self, genotype: str) -> dict[str, float]:
        """Every cost column of ``genotype``'s row (its own, else an isomorphic cell's)."""
        held = self._cache.get(genotype)
        if held is None:
            held = {name: self.values[name][self.row(genotype)] for name in self.columns}
            self._cache[genotype] = held
        return dict(held)

    def row(self, genotype: str) -> int:
        """The index of ``genotype``'s row; an EvonasError when the table has no row for the cell."""
        index = self._row.get(genotype.strip())
        if index is None:
            match = self._isomorphic(genotype)
            if match is None:
                raise EvonasError(f"the cost table {self.path} has no row for {genotype} (nor for an isomorphic "
                                  "cell); a cost table must hold every cell the search can reach")
            index = self._row[match]
        return index

    def _isomorphic(self, genotype: str) -> str | None:
        """The genotype string of the table's first row isomorphic to ``genotype`` (None if none)."""
        if self._bench is None:
            self._bench = self.space.benchmark(self.path)
        match = self._bench.match(genotype, ())
        return None if match is None else match.arch

    def check_covers(self) -> None:
        """Where the space lists every cell, a one-line error before the search if the table misses one."""
        cells = self.space.benchmark_order()
        missing = [g for g in cells or () if g not in self._row and self._isomorphic(g) is None]
        if missing:
            raise EvonasError(f"the cost table {self.path} has no row for {len(missing)} of the {len(cells)} "
                              f"{self.space.name} cells (first: {missing[0]}); a cost table must hold every cell")

    def minimum(self, name: str) -> float:
        """The cheapest measured value of column ``name`` (what every measured cell costs at least)."""
        return min((v for v in self.values[name] if v >= 0), default=math.inf)


def with_cost_table(settings: SearchSettings) -> SearchSettings:
    """``settings`` with the cost table's absolute path, cost columns and checksum filled in.

    Only once: recorded settings (a resume) already hold them, and the driver compares the file
    with the recorded checksum instead of taking the file as it is now.
    """
    if settings.cost_table is None or settings.cost_table_sha256 is not None:
        return settings
    path = Path(settings.cost_table).expanduser().resolve()
    table = CostTable.read(settings.space, path)
    return replace(settings, cost_table=str(path), cost_table_columns=table.columns, cost_table_sha256=table.sha256)


def read_cost_table(settings: SearchSettings) -> CostTable | None:
    """The recorded cost table of a search (None without one), checked against its checksum."""
    if settings.cost_table is None or not set(settings.cost_table_columns) & set(settings.costs_needed):
        return None
    return CostTable.read(settings.space, settings.cost_table, settings.cost_table_sha256)


def _is_number(text: str | None) -> bool:
    """Whether a table entry is a finite number (a cost column holds nothing else)."""
    try:
        return text is not None and math.isfinite(float(text))
    except (TypeError, ValueError):
        return False
