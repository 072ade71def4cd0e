"""The training-refined head: short trainings of a run's best cells, successive halving, resume, show."""
from __future__ import annotations

import json

import pytest

from cli_helpers import assert_one_line_error, run_cli
from evonas.errors import EvonasError
from evonas.training.refine import read_refinement, refine_run
from test_train import ROWS, TINY, _run_folder

FOUR = [*ROWS, {"id": 6, "genotype": "|nor_conv_1x1~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|nor_conv_3x3~2|",
                "score": 3.0, "status": "ok"}]
SHORT = {k: v for k, v in TINY.items() if k not in ("epochs", "dataset")}


def test_successive_halving_keeps_the_better_half_with_twice_the_epochs(tmp_path) -> None:
    run = _run_folder(tmp_path, FOUR, dataset="synthetic")
    record = refine_run(run, 4, 1, halving=True, overrides=SHORT)
    first, second = record["rounds"]
    assert [first["epochs"], second["epochs"]] == [1, 2] and len(first["cells"]) == 4 and len(second["cells"]) == 2
    accuracies = [c["accuracy"] for c in first["cells"]]
    assert accuracies == sorted(accuracies, reverse=True)  # each round is ranked by short-training accuracy
    assert [c["key"] for c in second["cells"]] != [] and {c["key"] for c in second["cells"]} <= \
        {c["key"] for c in first["cells"][:2]}
    assert record["chosen"] == second["cells"][0] and record["complete"]
    assert record["training_seconds"] == pytest.approx(sum(c["seconds"] for r in record["rounds"] for c in r["cells"]))
    assert read_refinement(run) == json.loads(json.dumps(record))
    assert sorted(p.name for p in (run / "refine").iterdir()) == ["round0", "round1"]


def test_a_rerun_resumes_and_other_settings_are_refused(tmp_path) -> None:
    run = _run_folder(tmp_path, FOUR, dataset="synthetic")
    done = refine_run(run, 2, 1, overrides=SHORT)
    finished = {c["out_dir"]: (tmp_path / c["out_dir"] / "result.json").stat().st_mtime_ns
                for c in done["rounds"][0]["cells"]}
    (run / "refine.json").unlink()  # as if killed before the record was written
    again = refine_run(run, 2, 1, overrides=SHORT)
    assert again == done  # finished trainings are read back, not trained again
    assert {d: (tmp_path / d / "result.json").stat().st_mtime_ns for d in finished} == finished
    with pytest.raises(EvonasError, match="was made with other settings"):
        refine_run(run, 3, 1, overrides=SHORT)


def test_cli_refine_and_show_print_the_rounds_and_the_choice(tmp_path, monkeypatch, capsys) -> None:
    run = _run_folder(tmp_path, FOUR, dataset="synthetic")
    code, out, err = run_cli(monkeypatch, capsys, "refine", str(run), "--top", "2", "--epochs", "1",
                             "--train-images", "80", "--test-images", "48", "--batch-size", "32")
    assert code == 0, err
    chosen = read_refinement(run)["chosen"]
    assert "refinement round 0: 2 cells x 1 epochs" in out and f"search rank {chosen['rank']}" in out
    code, out, err = run_cli(monkeypatch, capsys, "refine", str(run), "--top", "0")
    assert_one_line_error(code, out, err, "--refine-top and --refine-epochs must be at least 1")
