"""Benchmark tables: trained accuracies of cells, read through the space that parses them.

One API for every reader of a truth table (search summaries, ``evonas show``, ``correlate``,
``arch``): a CSV with the genotype in a column (``arch`` or ``genotype``; a space may read it
from other columns, see ``SearchSpace.genotype_of_row``) and numeric accuracy columns. A cell
is found by its exact genotype string or, failing that, by its canonical key (an isomorphic
cell), and the answer says which. Errors are one line that names the
file, the row and what to pass instead.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from search_spaces.errors import BenchmarkError, GenotypeError

if TYPE_CHECKING:
    from search_spaces.base import SearchSpace

ARCH_COLUMNS = ("arch", "genotype")


@dataclass(frozen=True)
class Cell:
    """One architecture (its genotype string) and its true accuracy."""

    arch: str
    truth: float


@dataclass(frozen=True)
class TruthMatch:
    """A table row for a cell: found by its exact string or, failing that, by isomorphism."""

    arch: str
    accuracies: dict[str, float]
    how: str  # "exact" or "isomorphic"
    class_size: int  # rows of the table in the cell's isomorphism class


class BenchmarkTable:
    """The rows of one truth table, looked up through ``space``."""

    def __init__(self, space: "SearchSpace", path: Path, header: list[str],
                 rows: list[tuple[int, dict[str, str], str]]) -> None:
        self.space, self.path, self.header = space, path, header
        self._rows = rows  # (file line, row, genotype string) in file order
        self._exact: dict[str, int] | None = None
        self._by_key: dict[str, list[int]] | None = None

    @classmethod
    def read(cls, space: "SearchSpace", path: str | Path) -> "BenchmarkTable":
        path = Path(path)
        if not path.is_file():
            raise BenchmarkError(f"truth/archs file {path} not found; pass an existing CSV file")
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            if space.genotype_of_row(dict.fromkeys(header, "")) is None:
                raise BenchmarkError(f"{path} lacks the column(s) {space.genotype_columns}; "
                                     f"it has: {', '.join(header) or 'no header'}")
            rows = [(reader.line_num, row, (space.genotype_of_row(row) or "").strip()) for row in reader]
        if not rows:
            raise BenchmarkError(f"{path} has no data rows")
        return cls(space, path, header, rows)

    def __len__(self) -> int:
        return len(self._rows)

    def check_column(self, column: str) -> None:
        if column not in self.header:
            raise BenchmarkError(f"{self.path} lacks the column(s) {column}; it has: {', '.join(self.header)}"
                                 " (choose the accuracy column with --truth-column)")

    def cells(self, column: str) -> list[Cell]:
        """Every row as (genotype string, accuracy in ``column``); genotypes are not parsed here."""
        self.check_column(column)
        return [Cell(genotype, self._number(line, row, column)) for line, row, genotype in self._rows]

    def check_genotypes(self, cells: Sequence[Cell]) -> None:
        """Parse every genotype; the first malformed one raises, naming its data row."""
        for number, cell in enumerate(cells, start=1):
            try:
                self.space.from_str(cell.arch)
            except GenotypeError as exc:
                raise BenchmarkError(f"{self.path} data row {number}: {cell.arch!r} is not a valid "
                                     f"{self.space.name} genotype ({exc})") from None

    def accuracy(self, genotype: str, column: str) -> float | None:
        """``column`` of the cell's row (exact string, else an isomorphic cell); None if absent."""
        match = self.match(genotype, (column,))
        return None if match is None else match.accuracies[column]

    def match(self, genotype: str, columns: Sequence[str]) -> TruthMatch | None:
        """The exact row of ``genotype`` or the first row of its isomorphism class, with ``columns``."""
        for column in columns:
            self.check_column(column)
        exact = self._exact_index().get(genotype.strip())
        same_class = self._class_index().get(self.space.str_key(genotype), [])
        index = exact if exact is not None else (same_class[0] if same_class else None)
        if index is None:
            return None
        line, row, arch = self._rows[index]
        accuracies = {c: self._number(line, row, c) for c in columns}
        return TruthMatch(arch, accuracies, "exact" if exact is not None else "isomorphic",
                          len(same_class))

    def _exact_index(self) -> dict[str, int]:
        if self._exact is None:
            self._exact = {}
            for i, (_, _, genotype) in enumerate(self._rows):
                self._exact.setdefault(genotype, i)
        return self._exact

    def _class_index(self) -> dict[str, list[int]]:
        """Canonical key -> rows in file order; parsing every row is paid once, on first need."""
        if self._by_key is None:
            self._by_key = {}
            for i, (line, _, genotype) in enumerate(self._rows):
                try:
                    key = self.space.str_key(genotype)
                except GenotypeError as exc:
                    raise BenchmarkError(f"{self.path} line {line}: {exc}") from None
                self._by_key.setdefault(key, []).append(i)
        return self._by_key

    def _number(self, line: int, row: dict[str, str], column: str) -> float:
        try:
            value = float(row[column])
        except (TypeError, ValueError):
            raise BenchmarkError(f"{self.path} line {line}: accuracy {row[column]!r} in column {column} "
                                 "is not a number") from None
        if not math.isfinite(value):
            raise BenchmarkError(f"{self.path} line {line}: accuracy {row[column]!r} in column {column} is not finite")
        return value
