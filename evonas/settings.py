"""The settings of a search and of its scoring, as pure data with a JSON round trip.

The CLI (or the Python API) fills a ``SearchSettings``; ``resolved()`` fills in the space's
defaults and checks every value; the run record stores it in ``config.json`` and a resume
reads it back, so a resumed run continues with exactly the settings it started with.
``ScoringSettings`` is everything besides the genotype that decides a score. No torch, no
Ray here: reading a run's settings must stay cheap.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

from evonas.errors import EvonasError

#: (population, sample) when neither the user nor the space gives one (each space has its own,
#: ``SearchSpace.population_sample``; ``evonas.searching.resolve_settings`` passes it in).
FALLBACK_POPULATION_SAMPLE = (25, 5)
DEFAULT_BUDGET = 500
DEFAULT_CHECKPOINT_EVERY = 25
#: A periodic checkpoint also waits this long after the previous one: the history already makes
#: every evaluation count, and at thousands of evaluations per second a checkpoint every K
#: evaluations (three fsyncs each) would cost more than the search.
DEFAULT_CHECKPOINT_SECONDS = 2.0
DEFAULT_TOP_K = 5
DEFAULT_BATCH_SIZE = 64
DEFAULT_DATASET = "cifar10"
DEFAULT_SPACE = "nb201"
DEFAULT_ESTIMATOR = "sweet"
#: Networks whose depth trends a Sweetimator calibration averages.
DEFAULT_CALIBRATION_ARCHS = 100
BATCH_POLICIES = ("fixed", "fresh")
EXECUTOR_KINDS = ("local", "ray")
#: Costs of a cell (see ``evonas.costs``), always minimised, in the unit each is stored in.
COSTS: dict[str, str] = {"params": "M", "flops": "M", "latency": "ms"}
#: Units of a cost table's columns (``--cost-table``), by the column name's ending: measured
#: device latency in ms, energy in mJ; any other column is a plain number.
TABLE_UNITS: dict[str, str] = {"_latency": "ms", "_energy": "mJ"}
DEFAULT_LATENCY_DEVICE = "cpu"
DEFAULT_LATENCY_BATCH = 1
DEFAULT_LATENCY_THREADS = 1
#: How repeats of one timing become one number: the median (default), or the minimum, which other
#: processes on a busy machine disturb much less.
LATENCY_STATISTICS = ("median", "min")
#: What runs the timed networks: PyTorch eager, or ONNX Runtime (the optional extra evonas[onnx]).
LATENCY_BACKENDS = ("torch", "onnxruntime")
#: ONNX opset of every export (``evonas export``, the onnxruntime latency backend).
ONNX_OPSET = 18
_COUNT_UNITS = {"k": 1e-3, "m": 1.0, "g": 1e3}  # to millions
_TIME_UNITS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}  # to milliseconds
_ENERGY_UNITS = {"uj": 1e-3, "µj": 1e-3, "mj": 1.0, "j": 1e3}  # to millijoules
#: Per stored unit: (the units people may write, what the value is, an example).
_UNIT_KINDS = {"M": (_COUNT_UNITS, "count", "1.0M or 500K"), "ms": (_TIME_UNITS, "time", "2.5ms or 800us"),
               "mJ": (_ENERGY_UNITS, "energy", "20mJ or 0.5J"), "": ({"": 1.0}, "plain number", "2.5")}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-zµ]*)\s*$", re.IGNORECASE)


def cost_unit(cost: str) -> str:
    """The unit ``cost`` is stored in: ``COSTS``' own, else a cost-table column's (``TABLE_UNITS``)."""
    if cost in COSTS:
        return COSTS[cost]
    return next((unit for end, unit in TABLE_UNITS.items() if cost.endswith(end)), "")


def parse_cost(cost: str, text: str | float, flag: str | None = None) -> float:
    """``1.0M``/``500K`` (params, flops), ``2.5ms``/``800us`` (latency, ``*_latency`` table columns),
    ``20mJ``/``0.5J`` (``*_energy`` columns) or a plain number (other columns), in the stored unit.

    Units are required where a cost has one: a bare ``1.0`` could mean one parameter or a million,
    and a constraint in the wrong unit would silently exclude everything or nothing. Whether a
    table column exists is checked with the settings (``SearchSettings.validate``).
    """
    flag = flag or (f"--max-{cost}" if cost in COSTS else f"--max-cost {cost}=")
    units, kind, example = _UNIT_KINDS[cost_unit(cost)]
    match = _QUANTITY.match(str(text))
    factor = units.get(match.group(2).lower()) if match else None
    if match is None or factor is None:
        what = "a plain number" if kind == "plain number" else f"a {kind} with its unit"
        raise EvonasError(f"{flag} takes {what}, like {example}, not {text!r}")
    value = float(match.group(1)) * factor
    if not (value > 0 and math.isfinite(value)):
        raise EvonasError(f"{flag} must be positive, not {text!r}")
    return value


def parse_cost_bounds(terms: Sequence[str]) -> dict[str, float]:
    """``--max-cost pixel3_latency=5ms`` terms -> {cost: bound in its stored unit}; each cost once."""
    bounds: dict[str, float] = {}
    for term in terms:
        name, sep, value = (part.strip() for part in term.partition("="))
        if not sep or not name or not value:
            raise EvonasError(f"--max-cost takes NAME=VALUE, like pixel3_latency=5ms, not {term!r}")
        if name in bounds:
            raise EvonasError(f"--max-cost gives {name} twice")
        bounds[name] = parse_cost(name, value)
    return bounds


def format_cost(cost: str, value: float) -> str:
    """A stored cost as people write it (``0.73M``, ``2.41ms``, ``24.2mJ``)."""
    return f"{value:.4g}{cost_unit(cost)}"


def parse_objectives(text: str) -> tuple[str, ...]:
    """``sweet,params`` -> ("sweet", "params"): names in order, no repeats."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise EvonasError("--objectives needs names, like sweet,params")
    return names


def check_latency(device: str, batch_size: int, threads: int, statistic: str = LATENCY_STATISTICS[0],
                  backend: str = LATENCY_BACKENDS[0]) -> None:
    """The latency-measurement flags on their own (whether the device exists is checked when measuring)."""
    if not re.fullmatch(r"cpu|cuda(:[0-9]+)?", device):
        raise EvonasError(f"--latency-device must be cpu or cuda[:N], not {device!r}")
    if batch_size < 1:
        raise EvonasError(f"--latency-batch-size must be at least 1, not {batch_size}")
    if threads < 1:
        raise EvonasError(f"--latency-threads must be at least 1, not {threads}")
    if statistic not in LATENCY_STATISTICS:
        raise EvonasError(f"--latency-statistic must be one of {', '.join(LATENCY_STATISTICS)}, not {statistic!r}")
    if backend not in LATENCY_BACKENDS:
        raise EvonasError(f"--latency-backend must be one of {', '.join(LATENCY_BACKENDS)}, not {backend!r}")


def check_batch_policy(policy: str) -> None:
    if policy not in BATCH_POLICIES:
        raise EvonasError(f"--batch-policy must be one of {', '.join(BATCH_POLICIES)}, not {policy!r}")


def check_pool(workers: int | None, gpus_per_worker: float | None) -> None:
    """The Ray pool flags on their own (what the cluster can hold is checked when it is known)."""
    if workers is not None and workers < 1:
        raise EvonasError(f"--workers must be at least 1, not {workers}")
    if gpus_per_worker is not None and (
        gpus_per_worker < 0 or (gpus_per_worker > 1 and not float(gpus_per_worker).is_integer())
    ):
        raise EvonasError(f"--gpus-per-worker must be a fraction in [0, 1] or a whole number, not {gpus_per_worker}")


def check_executor(kind: str | None, workers: int | None, gpus_per_worker: float | None, address: str | None) -> None:
    """The executor flags together: pool flags only make sense with Ray."""
    if kind not in EXECUTOR_KINDS:
        raise EvonasError(f"--executor must be one of {', '.join(EXECUTOR_KINDS)}, not {kind!r}")
    check_pool(workers, gpus_per_worker)
    if kind == "local" and (address is not None or gpus_per_worker is not None or (workers or 1) != 1):
        raise EvonasError("--workers, --gpus-per-worker and --address need the Ray executor; add --executor ray")


@dataclass(frozen=True)
class ScoringSettings:
    """Everything that determines a score besides the genotype; recorded in every run."""

    space: str
    estimator: str
    estimator_settings: dict[str, Any] = field(default_factory=dict)
    dataset: str = DEFAULT_DATASET
    data_dir: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    batch_policy: str = BATCH_POLICIES[0]
    seed: int = 0
    build_options: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ScoringSettings":
        return cls(**data)


@dataclass
class SearchSettings:
    """Everything that decides what a search does (executor settings only decide how fast)."""

    space: str = DEFAULT_SPACE
    estimator: str = DEFAULT_ESTIMATOR
    budget: int | None = DEFAULT_BUDGET
    time_limit: float | None = None
    population: int | None = None
    sample: int | None = None
    seed: int = 0
    dataset: str = DEFAULT_DATASET
    data_dir: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    batch_policy: str = BATCH_POLICIES[0]
    interval: tuple[float, float] | None = None
    estimator_settings: dict[str, Any] = field(default_factory=dict)
    build_options: dict[str, Any] | None = None
    warmup: int = 0
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS
    top_k: int = DEFAULT_TOP_K
    executor: str | None = None
    workers: int | None = None  # None: 1 in process, or the Ray executor's default pool
    gpus_per_worker: float | None = None
    address: str | None = None
    ship_data: bool = False  # send the driver's dataset to Ray nodes through the object store
    jobs_per_call: int = 1  # Ray: jobs per actor call (divides Ray's per-call cost for very short evaluations)
    #: Upper bounds on costs in their stored units (``COSTS``); a cell over one is never scored.
    constraints: dict[str, float] = field(default_factory=dict)
    #: The estimator plus costs to optimise together; None: the estimator alone.
    objectives: tuple[str, ...] | None = None
    #: The search strategy (``evonas.searching.registry``); None: aging for one objective, nsga2 for several.
    algorithm: str | None = None
    latency_device: str = DEFAULT_LATENCY_DEVICE
    latency_batch_size: int = DEFAULT_LATENCY_BATCH
    latency_threads: int = DEFAULT_LATENCY_THREADS
    latency_statistic: str = LATENCY_STATISTICS[0]
    latency_backend: str = LATENCY_BACKENDS[0]
    #: A CSV of measured costs per cell (``evonas.costs.table``; the user gives the path), its
    #: columns that are costs and the file's SHA-256 (both filled in by ``resolve_settings``), so a
    #: resume looks costs up in the very same table.
    cost_table: str | None = None
    cost_table_columns: tuple[str, ...] = ()
    cost_table_sha256: str | None = None
    #: A JSON-lines file of scores shared by searches (``evonas.searching.cache.ScoreStore``): read
    #: at the start, appended as cells are scored; None: scores live only in this run.
    score_store: str | None = None
    #: The seed of scoring (weight init, fixed batches); None: ``seed``. One scoring seed for several
    #: search seeds makes their scores the same numbers, so they can share a ``score_store``.
    scoring_seed: int | None = None

    @property
    def cost_names(self) -> tuple[str, ...]:
        """Every cost this search could use: ``COSTS``, then the cost table's columns."""
        return (*COSTS, *self.cost_table_columns)

    @property
    def cost_objectives(self) -> tuple[str, ...]:
        """The costs among the objectives, in the order given."""
        return tuple(name for name in self.objectives or () if name in self.cost_names)

    @property
    def costs_needed(self) -> tuple[str, ...]:
        """Every cost the search computes (constrained or optimised), in ``cost_names`` order."""
        wanted = set(self.constraints) | set(self.cost_objectives)
        return tuple(name for name in self.cost_names if name in wanted)

    def resolved(self, population_sample: tuple[int, int] = FALLBACK_POPULATION_SAMPLE) -> "SearchSettings":
        """A copy with defaults filled in and every setting checked (EvonasError if bad).

        ``population_sample``: the space's default (population, sample); this module cannot ask
        the space itself (no search-space imports here), ``evonas.searching.resolve_settings`` does.
        """
        pop, sample = population_sample
        cfg = SearchSettings(**{f.name: getattr(self, f.name) for f in fields(self)})
        cfg.population = pop if cfg.population is None else cfg.population
        cfg.sample = min(sample, cfg.population) if cfg.sample is None else cfg.sample
        if cfg.executor is None:
            cfg.executor = "ray" if ((cfg.workers or 1) > 1 or cfg.address) else "local"
        if cfg.interval is not None:
            cfg.interval = (float(cfg.interval[0]), float(cfg.interval[1]))
        cfg.constraints = {name: float(value) for name, value in cfg.constraints.items()}
        cfg.cost_table_columns = tuple(cfg.cost_table_columns)
        if cfg.objectives is not None:
            cfg.objectives = tuple(cfg.objectives)
            scored = [name for name in cfg.objectives if name not in cfg.cost_names]
            if len(scored) > 1:
                raise EvonasError(f"--objectives holds one estimator plus costs ({', '.join(cfg.cost_names)}); "
                                  f"{' and '.join(map(repr, scored))} are not both possible (unknown objective?)")
            if not scored:
                raise EvonasError(f"--objectives needs one estimator besides the costs, like sweet,{cfg.objectives[0]}")
            if cfg.estimator != scored[0] and cfg.estimator != DEFAULT_ESTIMATOR:
                raise EvonasError(f"--objectives scores with {scored[0]!r} but --estimator says {cfg.estimator!r}; "
                                  "give one of them")
            cfg.estimator = scored[0]
        if cfg.algorithm is None:
            cfg.algorithm = "nsga2" if len(cfg.objectives or ()) > 1 else "aging"
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ``EvonasError`` naming the first bad setting and how to fix it.

        Estimator options (the interval included) are checked where they are resolved,
        in ``evonas.scoring.resolve``.
        """
        if self.budget is None and self.time_limit is None:
            raise EvonasError("give a budget: --budget N evaluations and/or --time-limit SECONDS")
        if self.budget is not None and self.budget < 1:
            raise EvonasError(f"--budget must be at least 1 evaluation, not {self.budget}")
        if self.time_limit is not None and not (self.time_limit > 0 and math.isfinite(self.time_limit)):
            raise EvonasError(f"--time-limit must be a positive number of seconds, not {self.time_limit}")
        if self.population is None or self.population < 1:
            raise EvonasError(f"--population must be at least 1, not {self.population}")
        if self.sample is None or not 1 <= self.sample <= self.population:
            raise EvonasError(f"--sample must be between 1 and the population ({self.population}), not {self.sample}")
        if self.warmup < 0:
            raise EvonasError(f"--warmup must be 0 (off) or a number of random cells, not {self.warmup}")
        if self.budget is not None and max(self.population, self.warmup) > self.budget:
            what = f"--warmup ({self.warmup})" if self.warmup > self.population else f"--population ({self.population})"
            raise EvonasError(f"{what} is larger than --budget ({self.budget}); raise the budget or lower it")
        if self.checkpoint_every < 1:
            raise EvonasError(f"--checkpoint-every must be at least 1, not {self.checkpoint_every}")
        if not self.checkpoint_seconds >= 0:
            raise EvonasError(f"--checkpoint-seconds must be 0 or more, not {self.checkpoint_seconds}")
        if self.batch_size < 1:
            raise EvonasError(f"--batch-size must be at least 1, not {self.batch_size}")
        check_batch_policy(self.batch_policy)
        check_executor(self.executor, self.workers, self.gpus_per_worker, self.address)
        if self.jobs_per_call < 1:
            raise EvonasError(f"--jobs-per-call must be at least 1, not {self.jobs_per_call}")
        if self.jobs_per_call > 1 and self.executor == "local":
            raise EvonasError("--jobs-per-call needs the Ray executor; add --executor ray")
        if self.top_k < 1:
            raise EvonasError(f"--top-k must be at least 1, not {self.top_k}")
        self._validate_objectives()

    def _validate_objectives(self) -> None:
        """Constraints, objectives and latency settings (hardware-aware search).

        Whether ``algorithm`` names a strategy, and one that takes this many objectives, is
        checked by ``evonas.searching.resolve_settings``: the strategies are plug-ins, and this
        module knows none of them.
        """
        for name, limit in self.constraints.items():
            if name not in self.cost_names:
                table = "" if self.cost_table else " (add --cost-table FILE for a table's measured costs)"
                raise EvonasError(f"unknown constraint {name!r}; constraints are on {', '.join(self.cost_names)}{table}")
            if not (limit > 0 and math.isfinite(limit)):
                flag = f"--max-{name}" if name in COSTS else f"--max-cost {name}="
                raise EvonasError(f"{flag} must be positive, not {limit}")
        self._validate_cost_table()
        check_latency(self.latency_device, self.latency_batch_size, self.latency_threads, self.latency_statistic,
                      self.latency_backend)

    def _validate_cost_table(self) -> None:
        """A cost table is described (columns, checksum) and used; its columns are not evonas's own costs."""
        if self.cost_table is None:
            if self.cost_table_columns or self.cost_table_sha256:
                raise EvonasError("cost-table columns or checksum without --cost-table FILE")
            return
        if not self.cost_table_columns or not self.cost_table_sha256:
            raise EvonasError(f"the cost table {self.cost_table} is not described yet (columns, checksum); "
                              "pass the settings through evonas.searching.resolve_settings")
        clash = [name for name in self.cost_table_columns if name in COSTS]
        if clash:
            raise EvonasError(f"the cost table {self.cost_table} has a column {clash[0]!r}, a name of evonas's own "
                              "costs; rename the column")
        if not set(self.cost_table_columns) & set(self.costs_needed):
            raise EvonasError(f"--cost-table {self.cost_table} is used by no constraint or objective; name one of "
                              f"its columns ({', '.join(self.cost_table_columns)}) in --max-cost or --objectives")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchSettings":
        """Read recorded settings; unknown keys are ignored so older runs stay readable."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("interval", "objectives", "cost_table_columns"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)


def save_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON (small files; atomic writes live in runs.py)."""
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def load_json(path: Path) -> dict[str, Any]:
    """Read a JSON object, turning a missing or broken file into a one-line EvonasError."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise EvonasError(f"{path} does not exist; is this a run folder made by `evonas search`?") from None
    except (OSError, ValueError) as exc:
        raise EvonasError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise EvonasError(f"{path} does not hold a JSON object")
    return data
