"""Latency of a cell from a per-op lookup table: measured once per setting, then summed.

Timing every network during a search is slow and noisy, so each distinct (op, input shape) the
space can produce is timed once on the chosen device (warm-up, then the median of repeats) and a
cell's latency is predicted as the sum of the ops its network actually calls plus a fixed part
(stem, reductions, head, the additions and concatenations between ops). The fixed part is
measured: the median, over a few reference cells, of the whole network's time minus its ops'.
Ops behind ``none`` are never called, so they cost nothing, as in the network itself.

Two backends time the same modules: ``torch`` (PyTorch eager) and ``onnxruntime`` (each op and
each reference network exported to ONNX in memory with fixed shapes, then run in an ONNX Runtime
session with graph optimisations; needs ``pip install 'evonas[onnx]'``). ONNX Runtime runs a
network as one graph, so its table holds what an op adds inside a graph, and ops that only see
constants (folded by the export) cost nothing; see ``WHOLE_GRAPH``.

A table belongs to (space, dataset shape, device, backend, batch size, threads, network options,
torch version); it is kept as JSON in the user cache (``$EVONAS_CACHE/latency/``) with those
settings, and a search copies the one it used into its run folder so a resume predicts the same.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import random
import statistics
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

import search_spaces
from evonas.costs.network import deployed_options, image_spec, meta_network, traced_ops
from evonas.errors import EvonasError
from evonas.scoring import cache_path
from evonas.seeding import stable_seed
from evonas.settings import LATENCY_BACKENDS, ONNX_OPSET, check_latency

FORMAT = 1
BACKENDS = LATENCY_BACKENDS
#: Sampling stops once this many cells in a row showed no new (op, shape).
SATURATION = 200
MAX_SAMPLES = 5000
REFERENCE_CELLS = 5
WARMUP = 5
REPEATS = 25
#: One timing of a module on an input, in milliseconds.
Timer = Callable[[nn.Module, torch.Tensor], float]


@dataclass(frozen=True)
class LatencySettings:
    """What a latency table is measured under (every field changes the numbers)."""

    space: str
    dataset: str = "cifar10"
    device: str = "cpu"
    backend: str = "torch"
    batch_size: int = 1
    threads: int = 1
    statistic: str = "median"

    def check(self) -> None:
        """The flags, then whether this machine can measure under them (device, backend installed)."""
        check_latency(self.device, self.batch_size, self.threads, self.statistic, self.backend)
        if self.device.startswith("cuda"):
            index = int(self.device.partition(":")[2] or 0)
            if not torch.cuda.is_available() or index >= torch.cuda.device_count():
                raise EvonasError(f"--latency-device {self.device}: no such CUDA device here")
        if self.backend == "onnxruntime":
            _ort_providers(torch.device(self.device))

    def full(self) -> dict[str, Any]:
        """The settings plus what they imply (network options, image shape, torch version)."""
        space = search_spaces.get(self.space)
        classes, side = image_spec(self.dataset)
        return {**asdict(self), "build_options": deployed_options(space), "num_classes": classes,
                "image_side": side, "torch": torch.__version__, "format": FORMAT}


def table_path(settings: LatencySettings) -> Path:
    """Where the table of ``settings`` is cached (beside the calibration cache)."""
    digest = hashlib.sha256(json.dumps(settings.full(), sort_keys=True).encode()).hexdigest()[:16]
    return cache_path().parent / "latency" / f"{settings.space}-{settings.device.replace(':', '')}-{digest}.json"


def op_key(module: nn.Module, shape: torch.Size | tuple[int, ...]) -> str:
    """``<module as printed, one line> @ <input shape>``: equal for ops that time the same."""
    return " ".join(repr(module).split()) + " @ " + "x".join(map(str, shape))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _repeat(call: Callable[[], object], sync: Callable[[], None], warmup: int, repeats: int, statistic: str) -> float:
    """Median (or minimum) wall time in ms of ``repeats`` calls after ``warmup`` untimed ones, each synchronised."""
    for _ in range(warmup):
        call()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - start)
    return (min if statistic == "min" else statistics.median)(times) * 1e3


def wall_timer(warmup: int = WARMUP, repeats: int = REPEATS, statistic: str = "median") -> Timer:
    """PyTorch eager: the module called on ``x`` (device synchronised), timed by ``_repeat``."""
    def timer(module: nn.Module, x: torch.Tensor) -> float:
        with torch.no_grad():
            return _repeat(lambda: module(x), lambda: _sync(x.device), warmup, repeats, statistic)
    return timer


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise EvonasError("--latency-backend onnxruntime needs ONNX Runtime (not installed); "
                          "run: pip install 'evonas[onnx]'") from None
    return onnxruntime


def _ort_providers(device: torch.device) -> list[Any]:
    """ONNX Runtime's execution providers for ``device`` (CUDA's only where this onnxruntime has it)."""
    ort = _onnxruntime()
    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise EvonasError(f"--latency-backend onnxruntime on {device}: this onnxruntime has no CUDA "
                          "(CUDAExecutionProvider); install onnxruntime-gpu or measure on cpu")
    return [("CUDAExecutionProvider", {"device_id": device.index or 0})]


def _to_onnx(module: nn.Module, x: torch.Tensor) -> bytes:
    """``module`` on ``x``'s shape as an ONNX model in memory (fixed shapes, eval mode).

    The TorchScript-based exporter (``dynamo=False``): about a hundred times faster per export
    than the torch.export-based one ``evonas export`` uses, which matters for a table of many ops.
    """
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the exporter's own deprecation notice
        warnings.filterwarnings("ignore", "Constant folding", UserWarning)
        torch.onnx.export(module, (x,), buffer, dynamo=False, opset_version=ONNX_OPSET, input_names=["x"],
                          do_constant_folding=True)
    return buffer.getvalue()


def onnx_timer(warmup: int = WARMUP, repeats: int = REPEATS, statistic: str = "median", threads: int = 1) -> Timer:
    """ONNX Runtime: the module exported to ONNX and run in an optimised session, timed by ``_repeat``.

    One session per call, on the CPU (``threads`` intra-op threads, one inter-op) or, for a CUDA
    input, on CUDAExecutionProvider with input and outputs bound on the device.
    """
    ort = _onnxruntime()
    def timer(module: nn.Module, x: torch.Tensor) -> float:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        session = ort.InferenceSession(_to_onnx(module, x), options, providers=_ort_providers(x.device))
        array = x.detach().cpu().numpy()
        inputs = [i.name for i in session.get_inputs()]  # none when the output does not depend on x (folded)
        if x.device.type != "cuda":
            feed = dict.fromkeys(inputs, array)
            return _repeat(lambda: session.run(None, feed), lambda: None, warmup, repeats, statistic)
        binding = session.io_binding()
        for name in inputs:
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", x.device.index or 0))
        for output in session.get_outputs():
            binding.bind_output(output.name, "cuda", x.device.index or 0)
        return _repeat(lambda: session.run_with_iobinding(binding), binding.synchronize_outputs,
                       warmup, repeats, statistic)
    return timer


#: The one place a backend becomes a timer: (settings, warm-up runs, timed repeats) -> Timer.
_TIMERS: dict[str, Callable[[LatencySettings, int, int], Timer]] = {
    "torch": lambda s, warmup, repeats: wall_timer(warmup, repeats, s.statistic),
    "onnxruntime": lambda s, warmup, repeats: onnx_timer(warmup, repeats, s.statistic, s.threads),
}
#: Backends that run a network as one optimised graph. An op timed alone would also pay what a network
#: pays once (the session run, about 10 us on a CPU, and ONNX Runtime's layout reorders around its
#: kernels), so their table holds an op's cost inside a graph (``_in_graph_ms``); and an op whose input
#: does not depend on the image (NB-201: a conv on a node no op wrote) is folded into a constant when
#: the network is exported, so it costs nothing.
WHOLE_GRAPH = frozenset({"onnxruntime"})


def make_timer(settings: LatencySettings, warmup: int | None = None, repeats: int | None = None) -> Timer:
    """The timer of ``settings.backend`` with its statistic (and threads); WARMUP and REPEATS by default."""
    if settings.backend not in _TIMERS:
        check_latency(settings.device, settings.batch_size, settings.threads, settings.statistic, settings.backend)
    return _TIMERS[settings.backend](settings, WARMUP if warmup is None else warmup,
                                     REPEATS if repeats is None else repeats)


def _materialise(module: nn.Module, device: torch.device, seed: int) -> nn.Module:
    """A real copy of a meta-device module with small deterministic weights (never denormals)."""
    real = copy.deepcopy(module).to_empty(device=device).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in real.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        for name, buf in real.named_buffers():
            buf.fill_(1 if name.endswith("running_var") else 0)
    return real


class LatencyTable:
    """Per-(op, input shape) times plus the fixed part; ``predict`` sums what a cell calls."""

    def __init__(self, settings: dict[str, Any], ops: dict[str, float], fixed_ms: float,
                 residuals: list[float]) -> None:
        self.settings, self.ops, self.fixed_ms, self.residuals = settings, ops, fixed_ms, residuals
        self.space = search_spaces.get(settings["space"])

    # ---- prediction ---------------------------------------------------------------
    def _network(self, genotype: str) -> tuple[nn.Module, torch.Tensor]:
        s = self.settings
        model = meta_network(self.space, self.space.from_str(genotype), s["num_classes"], s["build_options"])
        return model, torch.zeros(s["batch_size"], 3, s["image_side"], s["image_side"], device="meta")

    def ops_ms(self, genotype: str) -> float:
        """The summed table times of the ops ``genotype``'s network calls."""
        model, images = self._network(genotype)
        total = 0.0
        for module, x in traced_ops(self.space, model, images, constants=self.settings.get("backend") not in WHOLE_GRAPH):
            key = op_key(module, x.shape)
            if key not in self.ops:
                raise EvonasError(f"the latency table has no entry for {key}; rebuild it with "
                                  f"`evonas latency build --space {self.space.name} --rebuild`")
            total += self.ops[key]
        return total

    def predict(self, genotype: str) -> float:
        """Predicted latency of ``genotype``'s network in milliseconds."""
        return self.fixed_ms + self.ops_ms(genotype)

    # ---- persistence --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "ops": self.ops, "fixed_ms": self.fixed_ms, "residuals": self.residuals}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LatencyTable":
        try:
            return cls(data["settings"], {k: float(v) for k, v in data["ops"].items()}, float(data["fixed_ms"]),
                       [float(r) for r in data["residuals"]])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EvonasError(f"not a latency table ({exc}); rebuild it with `evonas latency build`") from None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "LatencyTable":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise EvonasError(f"cannot read the latency table {path} ({exc})") from None


def measure_network(settings: LatencySettings, genotype: str, timer: Timer | None = None) -> float:
    """Directly timed latency of one cell's whole network (what the table predicts), in ms."""
    space = search_spaces.get(settings.space)
    full = settings.full()
    device = torch.device(settings.device)
    with torch.random.fork_rng(devices=[]), _threads(settings.threads):
        torch.manual_seed(stable_seed("latency-net", genotype))
        model = space.build(space.from_str(genotype), full["num_classes"], **full["build_options"]).to(device).eval()
        x = torch.randn(settings.batch_size, 3, full["image_side"], full["image_side"]).to(device)
        return (timer or make_timer(settings))(model, x)


@contextmanager
def _threads(threads: int) -> Iterator[None]:
    """Run a block with torch's intra-op thread count set, then put it back."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def distinct_ops(settings: LatencySettings, rng: random.Random) -> tuple[dict[str, tuple[nn.Module, torch.Size]], list[str]]:
    """Every (op, input shape) the space produces, found by tracing random cells until none is new.

    Also returns the references the fixed part is measured on: the first cells drawn whose network
    calls an op (one that calls none outputs a constant, which ONNX Runtime folds away entirely).
    """
    space = search_spaces.get(settings.space)
    full = settings.full()
    images = torch.zeros(settings.batch_size, 3, full["image_side"], full["image_side"], device="meta")
    found: dict[str, tuple[nn.Module, torch.Size]] = {}
    cells: list[str] = []
    references: list[str] = []
    quiet = 0
    while quiet < SATURATION and len(cells) < MAX_SAMPLES:
        genotype = space.to_str(space.sample(rng))
        cells.append(genotype)
        model = meta_network(space, space.from_str(genotype), full["num_classes"], full["build_options"])
        calls = traced_ops(space, model, images, constants=settings.backend not in WHOLE_GRAPH)
        if calls and len(references) < REFERENCE_CELLS:
            references.append(genotype)
        new = 0
        for module, x in calls:
            key = op_key(module, x.shape)
            if key not in found:
                found[key] = (module, x.shape)
                new += 1
        quiet = 0 if new else quiet + 1
    return found, references


def _in_graph_ms(timer: Timer, module: nn.Module, x: torch.Tensor, context_ms: dict[torch.Size, float]) -> float:
    """What ``module`` adds to a network run as one graph: ``module`` then a 3x3 average pool, less
    the pool alone on ``module``'s output (cached by shape in ``context_ms``), never below zero."""
    context = nn.AvgPool2d(3, stride=1, padding=1)
    with torch.no_grad():
        out = module(x)
    if out.shape not in context_ms:
        context_ms[out.shape] = timer(context, out)
    return max(timer(nn.Sequential(module, context), x) - context_ms[out.shape], 0.0)


def build_table(settings: LatencySettings, timer: Timer | None = None,
                progress: Callable[[int, int], None] | None = None) -> LatencyTable:
    """Measure every distinct op and the fixed part under ``settings`` (not cached; see ``latency_table``)."""
    settings.check()
    timer = timer or make_timer(settings)
    device = torch.device(settings.device)
    found, references = distinct_ops(settings, random.Random(stable_seed("latency-cells", settings.space)))
    total = len(found) + len(references)
    ops: dict[str, float] = {}
    context_ms: dict[torch.Size, float] = {}
    with _threads(settings.threads):
        for done, (key, (module, shape)) in enumerate(sorted(found.items()), 1):
            real = _materialise(module, device, stable_seed("latency-op", key))
            x = torch.randn(shape, generator=torch.Generator().manual_seed(stable_seed("latency-x", key))).to(device)
            ops[key] = _in_graph_ms(timer, real, x, context_ms) if settings.backend in WHOLE_GRAPH else timer(real, x)
            if progress:
                progress(done, total)
    table = LatencyTable(settings.full(), ops, 0.0, [])
    residuals = []
    for done, genotype in enumerate(references, len(ops) + 1):
        residuals.append(measure_network(settings, genotype, timer) - table.ops_ms(genotype))
        if progress:
            progress(done, total)
    table.fixed_ms, table.residuals = statistics.median(residuals), residuals
    return table


def latency_table(settings: LatencySettings, rebuild: bool = False, timer: Timer | None = None,
                  progress: Callable[[int, int], None] | None = None) -> tuple[LatencyTable, Path, bool]:
    """The cached table of ``settings`` (built and cached when absent); (table, path, was cached)."""
    path = table_path(settings)
    if path.exists() and not rebuild:
        return LatencyTable.load(path), path, True
    table = build_table(settings, timer, progress)
    try:
        table.save(path)
    except OSError as exc:
        raise EvonasError(f"cannot write the latency table {path}: {exc}; set EVONAS_CACHE to a writable folder") from None
    return table, path, False
