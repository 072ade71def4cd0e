"""Final training: recipes, the loop, exact resume, DARTS train-only parts, run-folder selection, CLI errors."""
from __future__ import annotations

import json
import sys

import pytest
import torch

import search_spaces
from evonas import cli
from evonas.errors import EvonasError
from evonas.recipes import default_recipe, resolve_recipe
from evonas.training import model_cost, top_genotypes, train_genotype, train_top
from evonas.training.genotype import CHECKPOINT, RESULT
from evonas.training.trainer import training_loss

GENO = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
#: Tiny synthetic settings: the loop's mechanics, not its accuracy.
TINY = dict(epochs=2, batch_size=32, channels=4, layers=1, dataset="synthetic", train_images=80, test_images=48)


NB201, DARTS = search_spaces.get("nb201"), search_spaces.get("darts")


def _options(space, recipe, inference: bool = False) -> dict:
    return space.training_options(recipe.to_dict(), inference=inference)


def test_recipes_are_the_published_ones() -> None:
    nb = default_recipe(NB201)
    assert (nb.name, nb.epochs, nb.batch_size, nb.lr, nb.momentum, nb.nesterov, nb.weight_decay) == \
        ("200E", 200, 256, 0.1, 0.9, True, 5e-4)
    assert (nb.channels, nb.layers, nb.cutout, nb.grad_clip) == (16, 5, 0, None)
    assert _options(NB201, nb) == {"channels": 16, "cells_per_stage": 5}
    d = default_recipe(DARTS)
    assert (d.epochs, d.batch_size, d.lr, d.momentum, d.weight_decay, d.channels, d.layers) == \
        (600, 96, 0.025, 0.9, 3e-4, 36, 20)
    assert (d.cutout, d.aux_weight, d.drop_path, d.grad_clip) == (16, 0.4, 0.2, 5.0)
    assert _options(DARTS, d) == {"channels": 36, "layers": 20, "auxiliary": True, "drop_path_prob": 0.2}
    assert _options(DARTS, d, inference=True) == {"channels": 36, "layers": 20, "auxiliary": False,
                                                  "drop_path_prob": 0.0}
    assert [d.drop_path_at(e) for e in (0, 300, 599)] == [0.0, 0.1, 0.2 * 599 / 600]  # linear ramp


def test_overrides_resolve_and_are_checked() -> None:
    r = resolve_recipe(DARTS, {"epochs": 3, "lr": None, "grad_clip": 0, "aux_weight": 0})
    assert (r.epochs, r.lr, r.grad_clip, _options(DARTS, r)["auxiliary"]) == (3, 0.025, None, False)
    for bad, words in (({"epochs": 0}, "--epochs"), ({"batch_size": -1}, "--batch-size"),
                       ({"drop_path": 1.0}, "--drop-path"), ({"warp": 1}, "unknown recipe setting")):
        with pytest.raises(EvonasError, match=words):
            resolve_recipe(DARTS, bad)
    with pytest.raises(EvonasError, match="--drop-path do not apply to the nb201 network"):
        resolve_recipe(NB201, {"drop_path": 0.1})


def test_cost_of_the_nb201_reference_network() -> None:
    """DESIGN.md: the all-nor_conv_3x3 NB-201 network for 10 classes has 1,531,546 parameters."""
    space = search_spaces.get("nb201")
    g = space.from_str("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    model = space.build(g, 10, **_options(NB201, default_recipe(NB201), inference=True))
    params, params_total, macs = model_cost(model, (3, 32, 32), torch.device("cpu"))
    assert params == params_total == 1_531_546
    assert 215e6 < macs < 225e6  # NAS-Bench-201 lists ~220M FLOPs (multiply-accumulates) for this cell
    assert model.training  # counting leaves the mode alone


DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
            "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
            "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")


def test_cost_of_darts_v2_excludes_the_auxiliary_head() -> None:
    """DESIGN.md: DARTS-V2 at 36 channels / 20 cells has about 3.3M parameters, auxiliary head excluded."""
    space = search_spaces.get("darts")
    model = space.build(space.from_str(DARTS_V2), 10, **_options(DARTS, default_recipe(DARTS)))
    params, params_total, macs = model_cost(model, (3, 32, 32), torch.device("cpu"))
    assert round(params / 1e6, 1) == 3.3 and params_total > params + 100_000
    assert model.aux_logits is None and macs > 0


def _scalars(tb_dir) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.filterwarnings("ignore::UserWarning")  # the shared subset has 1 of 5 training files
def test_short_cifar_training_learns(cifar_dir, tmp_path) -> None:
    out = tmp_path / "nb"
    result = train_genotype("nb201", GENO, out, dict(epochs=2, batch_size=32, lr=0.02, channels=8, layers=1,
                            train_images=1000, test_images=500, data_dir=str(cifar_dir)))
    assert result["test_accuracy"] > 20.0, result["history"]  # chance is 10%; 26.2% measured (2000 images: 28.1%)
    assert (result["train_images"], result["test_images"], result["status"]) == (1000, 500, "ok")
    assert result["best_test_accuracy"] == max(h["test_accuracy"] for h in result["history"])
    assert result["recipe"]["lr"] == 0.02 and result["recipe"]["nesterov"] is True
    assert json.loads((out / "recipe.json").read_text()) == result["recipe"]
    assert json.loads((out / RESULT).read_text())["test_accuracy"] == result["test_accuracy"]
    assert result["parameters"] > 0 and result["flops"] > 0 and result["wall_seconds"] > 0
    assert result["precision"] == "fp32" and not result["channels_last"]
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and set(last["model"]) and (out / "best.pt").is_file()
    scalars = _scalars(out / "tb")
    for tag in ("train/loss", "train/accuracy", "test/loss", "test/accuracy", "lr", "images_per_second"):
        assert len(scalars[tag]) == 2, tag
    assert scalars["lr"] == pytest.approx([0.02, 0.01])  # cosine over 2 epochs, stepped per epoch
    assert scalars["test/accuracy"][-1] == pytest.approx(result["test_accuracy"])


class _StopAfter:
    """Progress that 'kills' the training after an epoch (the checkpoint is already on disk)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def start(self, *args) -> None: ...
    def epoch_start(self, *args) -> None: ...
    def batch_end(self) -> None: ...

    def epoch_end(self, metrics) -> None:
        if metrics["epoch"] == self.epoch:
            raise KeyboardInterrupt


@pytest.fixture
def deterministic():
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)


def _timeless(history):
    return [{k: v for k, v in h.items() if k not in ("images_per_second", "train_seconds")} for h in history]


@pytest.mark.parametrize("space,genotype,extra", [
    ("nb201", GENO, {}),
    ("darts", None, {"channels": 4, "layers": 3, "cutout": 8, "drop_path": 0.3, "aux_weight": 0.4}),
])
def test_resume_gives_bit_identical_weights(space, genotype, extra, tmp_path, deterministic) -> None:
    the_space = search_spaces.get(space)
    if genotype is None:
        import random

        genotype = the_space.to_str(the_space.sample(random.Random(0)))
    settings = {**TINY, **extra}
    straight = train_genotype(space, genotype, tmp_path / "a", settings)
    with pytest.raises(KeyboardInterrupt):
        train_genotype(space, genotype, tmp_path / "b", settings, progress=_StopAfter(1))
    assert (tmp_path / "b" / CHECKPOINT).is_file() and not (tmp_path / "b" / RESULT).exists()
    with pytest.raises(EvonasError, match="pass --resume"):  # never overwrite work silently
        train_genotype(space, genotype, tmp_path / "b", settings)
    resumed = train_genotype(space, genotype, tmp_path / "b", settings, resume=True)
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _timeless(resumed["history"]) == _timeless(straight["history"])
    assert _scalars(tmp_path / "b" / "tb")["test/accuracy"] == _scalars(tmp_path / "a" / "tb")["test/accuracy"]
    again = train_genotype(space, genotype, tmp_path / "b", settings, resume=True)  # finished: no retraining
    assert again["finished_at"] == resumed["finished_at"]


def _darts_model(drop_path: float = 0.0):
    import random

    space = search_spaces.get("darts")
    g = space.sample(random.Random(1))
    torch.manual_seed(0)
    return space.build(g, 10, channels=4, layers=3, auxiliary=True, drop_path_prob=drop_path)


def test_darts_auxiliary_head_is_trained_and_absent_in_eval() -> None:
    model = _darts_model()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    params, params_total, _ = model_cost(model, (3, 32, 32), torch.device("cpu"))
    assert params < params_total  # the auxiliary head is not part of the evaluated network

    def grads(weight: float) -> dict[str, torch.Tensor]:
        model.zero_grad()
        model.train()
        loss, main, _ = training_loss(model, x, y, weight)
        assert model.aux_logits is not None
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    with_aux, without = grads(0.4), grads(0.0)
    aux_only = set(with_aux) - set(without)
    assert aux_only and all(with_aux[n].abs().sum() > 0 for n in aux_only)  # the head learns
    shared = set(with_aux) & set(without)
    assert any(not torch.equal(with_aux[n], without[n]) for n in shared)  # and shapes the trunk
    model.eval()
    with torch.no_grad():
        model(x)
    assert model.aux_logits is None


def test_darts_drop_path_only_in_training() -> None:
    model = _darts_model()
    x = torch.randn(4, 3, 32, 32)

    def forward(p: float) -> torch.Tensor:
        model.drop_path_prob = p
        torch.manual_seed(3)
        with torch.no_grad():
            return model(x)

    model.eval()
    assert torch.equal(forward(0.0), forward(0.5))
    model.train()
    assert not torch.equal(forward(0.0), forward(0.5))
    assert torch.equal(forward(0.5), forward(0.5))  # seeded: the difference is the drop-path


def _run_folder(parent, rows, dataset="cifar10", higher_is_better=True):
    """A run folder as `evonas search` writes it (config.json + history.jsonl)."""
    space = search_spaces.get("nb201")
    run = parent / "run"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({
        "search": {"space": "nb201", "dataset": dataset, "data_dir": None},
        "scoring": {"space": "nb201", "estimator": "sweet", "dataset": dataset},
        "estimator": {"name": "sweet", "higher_is_better": higher_is_better},
    }))
    lines = [json.dumps({**r, "key": space.str_key(r["genotype"]) if r["status"] == "ok" else None}) for r in rows]
    (run / "history.jsonl").write_text("".join(line + "\n" for line in lines))
    return run


OTHER = "|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
ROWS = [  # GENO scored twice (fresh batches), a failure with a high score, a lower-is-better winner
    {"id": 0, "genotype": GENO, "score": 5.0, "status": "ok"},
    {"id": 1, "genotype": "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|", "score": 7.0, "status": "ok"},
    {"id": 2, "genotype": GENO, "score": 9.0, "status": "ok"},
    {"id": 3, "genotype": "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", "score": 99.0, "status": "failed"},
    {"id": 4, "genotype": OTHER, "score": 1.0, "status": "ok"},
    {"id": 5, "genotype": GENO, "score": float("nan"), "status": "ok"},
]


def test_top_genotypes_are_distinct_and_ordered(tmp_path) -> None:
    top = top_genotypes(_run_folder(tmp_path, ROWS), 5)
    assert [(t["rank"], t["score"]) for t in top] == [(1, 9.0), (2, 7.0), (3, 1.0)]
    assert top[0]["genotype"] == GENO and top[0]["key"] == search_spaces.get("nb201").str_key(GENO)
    lower = top_genotypes(_run_folder(tmp_path / "low", ROWS, higher_is_better=False), 2)
    assert [(t["genotype"], t["score"]) for t in lower] == [(OTHER, 1.0), (GENO, 5.0)]
    truncated = _run_folder(tmp_path / "cut", ROWS)
    with (truncated / "history.jsonl").open("a") as f:
        f.write('{"id": 6, "genotype": "|nor_')  # a line cut short by a kill
    assert top_genotypes(truncated, 1)[0]["score"] == 9.0


def test_train_top_ranks_folders_and_runs_as_ray_tasks(tmp_path) -> None:
    run = _run_folder(tmp_path, ROWS, dataset="synthetic")
    settings = {**TINY, "epochs": 1}
    seen = []
    results = train_top(run, 2, settings, on_result=seen.append)
    assert [r["rank"] for r in results] == [1, 2] == [r["rank"] for r in seen]
    assert [r["key"] for r in results] == [t["key"] for t in top_genotypes(run, 2)]
    assert [p.name.split("-")[0] for p in sorted((run / "train").iterdir())] == ["1", "2"]
    assert all(r["recipe"]["dataset"] == "synthetic" for r in results)  # the run's dataset
    again = train_top(run, 2, settings, resume=True)  # finished folders come back as they are
    assert [r["finished_at"] for r in again] == [r["finished_at"] for r in results]
    parallel = train_top(_run_folder(tmp_path / "fresh", ROWS, dataset="synthetic"), 2, settings, workers=2)
    assert [r["test_accuracy"] for r in parallel] == [r["test_accuracy"] for r in results]  # same seeds, same numbers


def _main(monkeypatch, *argv: str) -> int:
    """`evonas ARGV` in this process; its exit status."""
    monkeypatch.setattr(sys, "argv", ["evonas", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return exit_info.value.code or 0


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    return _main(monkeypatch, "train", *args), capsys.readouterr().err


def test_bad_inputs_are_one_line_errors(tmp_path, monkeypatch, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("EVONAS_CIFAR10_URL", f"file://{tmp_path}/no-such-archive.tar.gz")  # no network in tests
    no_results = _run_folder(tmp_path, [{"genotype": GENO, "score": None, "status": "failed"}])
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / CHECKPOINT).write_bytes(b"not a checkpoint")
    cases = {
        "genotype": ["--space", "nb201", "--genotype", "|conv~0|+|"],
        "epochs": ["--space", "nb201", "--genotype", GENO, "--epochs", "0"],
        "data": ["--space", "nb201", "--genotype", GENO, "--out", str(tmp_path / "o"), "--data-dir", str(empty)],
        "results": [str(no_results), "--top", "2"],
        "not a run": [str(empty)],
        "checkpoint": ["--space", "nb201", "--genotype", GENO, "--out", str(corrupt), "--resume"],
        "both": [str(no_results), "--space", "nb201", "--genotype", GENO],
        "space": ["--space", "nope", "--genotype", GENO],
    }
    for name, args in cases.items():
        code, err = _cli(monkeypatch, capsys, *args)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (name, err)
    assert "CIFAR-10" in _cli(monkeypatch, capsys, *cases["data"])[1]
    assert "no successfully scored genotype" in _cli(monkeypatch, capsys, *cases["results"])[1]
    assert "unreadable" in _cli(monkeypatch, capsys, *cases["checkpoint"])[1]


def test_resume_refuses_another_recipe(tmp_path) -> None:
    with pytest.raises(KeyboardInterrupt):
        train_genotype("nb201", GENO, tmp_path, TINY, progress=_StopAfter(1))
    with pytest.raises(EvonasError, match="another recipe .*lr 0.1 -> 0.2"):
        train_genotype("nb201", GENO, tmp_path, {**TINY, "lr": 0.2}, resume=True)
    result = train_genotype("nb201", GENO, tmp_path, {"epochs": None}, resume=True)  # the saved recipe is the base
    assert result["recipe"]["channels"] == TINY["channels"] and len(result["history"]) == 2


def test_cli_trains_a_run_top_and_search_train_top_chains(tmp_path, monkeypatch, capsys) -> None:
    import evonas.training as train_module

    run = _run_folder(tmp_path, ROWS, dataset="synthetic")
    tiny = ["--epochs", "1", "--channels", "4", "--layers", "1", "--train-images", "64", "--test-images", "32"]
    assert _main(monkeypatch, "train", str(run), "--top", "1", *tiny) == 0
    printed = capsys.readouterr().out
    (folder,) = (run / "train").iterdir()
    assert folder.name.startswith("1-") and str(folder) in printed and "SYNTHETIC" in printed

    # `search --train-top K --train-epochs E` trains the new run's top K (tiny networks here to stay fast)
    real = train_module.train_top
    calls = []

    def small(run_dir, k, overrides, **options):
        calls.append((k, overrides["epochs"], options["resume"]))
        return real(run_dir, k, {**overrides, "channels": 4, "layers": 1, "train_images": 64, "test_images": 32},
                    **options)

    monkeypatch.setattr(train_module, "train_top", small)
    searched = tmp_path / "searched"
    assert _main(monkeypatch, "search", "--space", "nb201", "--estimator", "params", "--budget", "4", "--population", "2",
                 "--sample", "2", "--dataset", "synthetic", "--batch-size", "8", "--run-dir", str(searched),
                 "--train-top", "2", "--train-epochs", "1") == 0
    assert calls == [(2, 1, True)]
    trained = sorted(p.name for p in (searched / "train").iterdir())
    assert [name.split("-")[0] for name in trained] == ["1", "2"]
    assert all(json.loads((searched / "train" / n / RESULT).read_text())["recipe"]["epochs"] == 1 for n in trained)
