"""Composite estimators (evonas.scoring.composite): parsing, fixed normalisation, scoring, search and resume."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Iterator

import pytest
from scipy.stats import norm
from torch import nn

import estimators
import estimators._shared_pass as shared_pass
import search_spaces
from cli_helpers import assert_one_line_error, run_cli
from estimators.base import Estimator, EstimatorError, EstimatorResult
from evonas.errors import EvonasError
from evonas.scoring import Scorer, calibration_archs, estimator_class, parse_estimators, resolve_scoring
from evonas.scoring import calibration as calibration_module
from evonas.scoring.composite import Normalisation, make_estimator, parse_composite
from evonas.searching import resume_search, start_search
from evonas.searching.cache import scoring_fingerprint
from evonas.settings import ScoringSettings, SearchSettings
from test_calibration import ToySpace

SMALL = {"channels": 4, "cells_per_stage": 1}
NB201_CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
]
#: Every path from the input to the output goes through `none`: the output ignores the input.
CUT_OFF = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|none~2|"


class PositiveFake(Estimator):
    """Sum of |first conv weight| (always > 0: log-normalised); counts its calls."""

    name = "fake_pos"
    needs_data = needs_labels = False
    calls = 0

    def score(self, model, batches, depth_units=None):
        PositiveFake.calls += 1
        return next(m for m in model.modules() if isinstance(m, nn.Conv2d)).weight.abs().sum().item()


class SignedFake(Estimator):
    """Sum of the classifier's weights (either sign: normalised as is); fails on a marked model size."""

    name = "fake_signed"
    needs_data = needs_labels = False
    fail_on_params: int | None = None

    def score(self, model, batches, depth_units=None):
        if sum(p.numel() for p in model.parameters()) == SignedFake.fail_on_params:
            raise EstimatorError("marked cell")
        return next(m for m in model.modules() if isinstance(m, nn.Linear)).weight.sum().item()


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("EVONAS_CACHE", str(tmp_path / "cache"))
    PositiveFake.calls, SignedFake.fail_on_params = 0, None
    with estimators.registered(PositiveFake), estimators.registered(SignedFake), search_spaces.registered(ToySpace):
        yield


HAND = {"fake_pos": {"transform": "asinh", "center": 2.0, "scale": 0.5, "unit": 0.25},
        "fake_signed": {"transform": "identity", "center": 0.1, "scale": 0.2, "unit": 1.0}}


# ---- the normalisation --------------------------------------------------------------
def test_hand_made_statistics_give_known_cdf_values() -> None:
    assert Normalisation("identity", 0.0, 1.0)(0.0) == pytest.approx(math.log(0.5))
    assert Normalisation("identity", 1.0, 2.0)(1.0 + 2.0 * 1.959963984540054) == pytest.approx(math.log(0.975))
    # asinh(x / unit) = 3 at the center: the median cell gets log 0.5
    assert Normalisation("asinh", 3.0, 2.0, unit=5.0)(5.0 * math.sinh(3.0)) == pytest.approx(math.log(0.5))
    # one spread below the center: Phi(-1)
    assert Normalisation("asinh", 2.0, 1.0, unit=0.1)(0.1 * math.sinh(1.0)) == pytest.approx(math.log(0.15865525393145707))
    dead = Normalisation("asinh", 8.0, 1.0, unit=1e-3)(0.0)  # a dead cell's 0: far below the sample, still ranked
    assert math.isfinite(dead) and dead < Normalisation("asinh", 8.0, 1.0, unit=1e-3)(1e-3)


def test_statistics_from_sample_scores() -> None:
    signed = Normalisation.from_scores("x", [-2.0, -1.0, 0.0, 1.0, 2.0, None, math.nan])
    assert (signed.transform, signed.center) == ("identity", 0.0)
    assert signed.scale == pytest.approx(2.0 / (norm.ppf(0.75) - norm.ppf(0.25)))
    sample = [0.0, 2.0, 2.0 * math.sinh(1.0), 2.0 * math.sinh(2.0), 2.0 * math.sinh(4.0)]
    counts = Normalisation.from_scores("x", sample)
    assert (counts.transform, counts.unit) == ("asinh", 2.0)
    assert counts.center == pytest.approx(1.0)  # median of asinh(x / 2): 0, 0.88, 1, 2, 4
    with pytest.raises(EvonasError, match="same score"):
        Normalisation.from_scores("x", [3.0, 3.0, 3.0, 3.0])
    with pytest.raises(EvonasError, match="scored 1 of 3"):
        Normalisation.from_scores("x", [3.0, None, math.inf])


# ---- the spec ----------------------------------------------------------------------
def test_specs_parse_to_parts_and_a_canonical_name(fakes) -> None:
    spec = parse_composite(" fake_pos + fake_signed=0.5 ")
    assert spec.parts == (("fake_pos", 1.0), ("fake_signed", 0.5))
    assert spec.name == "fake_pos+fake_signed=0.5" and spec.higher_is_better
    assert parse_estimators("fake_pos=1+fake_signed, params") == ["fake_pos+fake_signed", "params"]
    assert estimator_class("sweet+jacov").needs_calibration and not estimator_class("params+flops").needs_calibration
    assert estimator_class("zico+params").num_batches == 2


@pytest.mark.parametrize("spec, message", [
    ("sweet+nope", "unknown estimator 'nope'"),
    ("sweet+jacov=0", "bad weight '0'"),
    ("sweet+jacov=-1", "bad weight '-1'"),
    ("sweet+jacov=x", "bad weight 'x'"),
    ("sweet+jacov=inf", "bad weight 'inf'"),
    ("sweet=2", "has one part"),
    ("sweet+", "empty part"),
    ("sweet+jacov+sweet", "appears twice"),
])
def test_bad_specs_are_one_line_errors(spec: str, message: str, monkeypatch, capsys) -> None:
    with pytest.raises(EvonasError, match=message):
        parse_estimators(spec)
    code, out, err = run_cli(monkeypatch, capsys, "correlate", "--estimator", f"params,{spec}", "--sample", "2")
    assert_one_line_error(code, out, err, message)


def test_bad_settings_are_one_line_errors(fakes) -> None:
    resolve = lambda **kw: resolve_scoring(ToySpace.name, "fake_pos+fake_signed", dataset="synthetic", **kw)
    with pytest.raises(EvonasError, match="every part"):
        resolve(estimator_settings={"normalisation": {"fake_pos": HAND["fake_pos"]}})
    with pytest.raises(EvonasError, match="positive scale"):
        resolve(estimator_settings={"normalisation": {**HAND, "fake_pos": {**HAND["fake_pos"], "scale": 0}}})
    with pytest.raises(EvonasError, match="takes the settings"):
        resolve(estimator_settings={"weights": {}})
    with pytest.raises(EvonasError, match="--interval only applies"):
        resolve(interval=(1e-4, 5e-4))


# ---- scoring -----------------------------------------------------------------------
def _single(name: str, genotype: str, space: str = ToySpace.name, **settings) -> float:
    config = ScoringSettings(space, name, settings, dataset="synthetic", batch_size=8,
                             build_options=SMALL if space == "nb201" else None)
    return Scorer(config).score(genotype).score


def test_composite_is_the_weighted_sum_of_normalised_parts(fakes) -> None:
    config = resolve_scoring(ToySpace.name, "fake_pos=2+fake_signed=0.5", dataset="synthetic", batch_size=8,
                             estimator_settings={"normalisation": HAND})
    scorer = Scorer(config)
    for genotype in ("conv-conv-pool", "pool-conv-conv"):
        a, b = _single("fake_pos", genotype), _single("fake_signed", genotype)
        expected = (2.0 * math.log(norm.cdf((math.asinh(a / 0.25) - 2.0) / 0.5))
                    + 0.5 * math.log(norm.cdf((b - 0.1) / 0.2)))
        result = scorer.score(genotype)
        assert result.ok and result.score == pytest.approx(expected, rel=1e-12)
        assert result.extra["parts"] == {"fake_pos": a, "fake_signed": b}


def test_a_failed_part_fails_the_composite_with_its_reason(fakes) -> None:
    config = resolve_scoring(ToySpace.name, "fake_pos+fake_signed", dataset="synthetic", batch_size=8,
                             estimator_settings={"normalisation": HAND})
    scorer = Scorer(config)
    SignedFake.fail_on_params = sum(p.numel() for p in scorer.build("conv-conv-conv")[0].parameters())
    result = scorer.score("conv-conv-conv")
    assert result.status == "failed" and result.error == "fake_signed failed: EstimatorError: marked cell"
    assert scorer.score("pool-pool-pool").ok
    composite = make_estimator(config.estimator, config.estimator_settings)
    failed = EstimatorResult(None, 0.0, "failed", "EstimatorError: dead")
    alone = composite.combine({"fake_pos": EstimatorResult(1.0, 0.0), "fake_signed": failed}, 0.0)
    assert (alone.status, alone.error) == ("failed", "fake_signed failed: EstimatorError: dead")


def test_normalisation_comes_from_the_cached_calibration_sample(fakes) -> None:
    first = resolve_scoring(ToySpace.name, "fake_pos+fake_signed", dataset="synthetic", batch_size=8)
    sample = calibration_archs(ToySpace.name, 100, 0)
    assert PositiveFake.calls == len(sample)
    alone = Scorer(ScoringSettings(ToySpace.name, "fake_pos", {}, dataset="synthetic", batch_size=8))
    expected = Normalisation.from_scores("fake_pos", [alone.score(g).score for g in sample])
    parts = make_estimator(first.estimator, first.estimator_settings).resolved
    assert parts[0].normalisation == expected
    assert first.estimator_settings["reference"] == {"sample": "calibration", "num_archs": 100, "seed": 0}
    PositiveFake.calls = 0
    again = resolve_scoring(ToySpace.name, "fake_signed+fake_pos", dataset="synthetic", batch_size=8)
    assert PositiveFake.calls == 0  # both parts' sample scores come from the cache, in any order
    assert make_estimator(again.estimator, again.estimator_settings).resolved[1].normalisation == expected
    other_seed = resolve_scoring(ToySpace.name, "fake_pos+fake_signed", dataset="synthetic", batch_size=8, seed=1)
    assert PositiveFake.calls == 100 and scoring_fingerprint(other_seed) != scoring_fingerprint(first)


def test_changed_estimator_code_rescores_the_calibration_sample(fakes, monkeypatch) -> None:
    resolve = lambda: resolve_scoring(ToySpace.name, "fake_pos+fake_signed", dataset="synthetic", batch_size=8)
    first = resolve()
    assert PositiveFake.calls == 100
    resolve()
    assert PositiveFake.calls == 100  # cached
    monkeypatch.setattr(calibration_module, "code_fingerprint", lambda *objects: "edited")
    assert resolve().estimator_settings == first.estimator_settings and PositiveFake.calls == 200


def test_settings_round_trip_and_the_fingerprint_records_the_normalisation(fakes) -> None:
    config = resolve_scoring(ToySpace.name, "fake_pos+fake_signed", dataset="synthetic", batch_size=8,
                             estimator_settings={"normalisation": HAND})
    back = ScoringSettings.from_dict(json.loads(json.dumps(config.to_dict())))
    assert Scorer(back).score("conv-pool-conv").score == Scorer(config).score("conv-pool-conv").score
    moved = {**HAND, "fake_signed": {**HAND["fake_signed"], "center": 0.2}}
    changed = resolve_scoring(ToySpace.name, "fake_pos+fake_signed", dataset="synthetic", batch_size=8,
                              estimator_settings={"normalisation": moved})
    assert scoring_fingerprint(changed) != scoring_fingerprint(config)


SHARED_READERS = ("sweet", "sweet_ntk", "jacov", "epe_nas")


def _alone(name: str, genotype: str, **settings) -> tuple[float | None, str, str]:
    config = ScoringSettings("nb201", name, settings, dataset="synthetic", batch_size=8, build_options=SMALL)
    result = Scorer(config).score(genotype)
    return result.score, result.status, result.error


@pytest.mark.parametrize("genotype", [NB201_CELLS[0], NB201_CELLS[1], CUT_OFF])
def test_shared_pass_readers_share_one_forward_and_score_as_alone(genotype, monkeypatch, tmp_path) -> None:
    """The Sweet variants, jacov and epe_nas of a composite run one forward (and no solo pass),
    and every part's result, a failure included, is what the estimator gives alone."""
    monkeypatch.setenv("EVONAS_CACHE", str(tmp_path))
    interval = (1e-4, 5e-4)
    names = (*SHARED_READERS, "synflow")
    norms = {n: {"transform": "asinh", "center": 0.0, "scale": 1.0} for n in names}
    config = resolve_scoring("nb201", "+".join(names), dataset="synthetic", batch_size=8, interval=interval,
                             build_options=SMALL, estimator_settings={"normalisation": norms})
    scorer = Scorer(config)
    calls = {"shared": 0, "alone": 0}
    both, solo_w, solo_j = shared_pass._both, shared_pass.weight_gradients, shared_pass.input_jacobian
    monkeypatch.setattr(shared_pass, "_both", lambda *a: calls.__setitem__("shared", calls["shared"] + 1) or both(*a))
    monkeypatch.setattr(shared_pass, "weight_gradients",
                        lambda *a, **k: calls.__setitem__("alone", calls["alone"] + 1) or solo_w(*a, **k))
    monkeypatch.setattr(shared_pass, "input_jacobian",
                        lambda *a: calls.__setitem__("alone", calls["alone"] + 1) or solo_j(*a))
    parts = scorer.score_parts(genotype)[1]
    assert calls == {"shared": 1, "alone": 0}
    monkeypatch.undo()
    for name in names:
        settings = {"interval": interval} if name.startswith("sweet") else {}
        assert (parts[name].score, parts[name].status, parts[name].error) == _alone(name, genotype, **settings)
    if genotype == CUT_OFF:  # the Jacobian fails, the weight gradients do not: only its readers fail
        assert parts["jacov"].status == parts["epe_nas"].status == "failed" and parts["sweet"].ok


def test_shared_pass_rejects_an_unknown_read() -> None:
    with pytest.raises(ValueError, match="unknown shared-pass reads"):
        with shared_pass.shared_pass({"hessian"}):
            pass


def test_isomorphic_cells_share_the_key_but_not_the_weight_layout() -> None:
    """Why benchmarks/consistency_all.py scores every cell instead of one per isomorphism class:
    the same key gives the same init seed, but the networks draw their weights in another order."""
    space = search_spaces.get("nb201")
    pair = ["|nor_conv_1x1~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|nor_conv_3x3~1|avg_pool_3x3~2|",
            "|nor_conv_1x1~0|+|nor_conv_1x1~0|none~1|+|nor_conv_1x1~0|nor_conv_3x3~1|avg_pool_3x3~2|"]
    assert len({space.canonical_key(space.from_str(g)) for g in pair}) == 1
    assert _single("synflow", pair[0], "nb201") != _single("synflow", pair[1], "nb201")


# ---- search, resume, correlate, listing ---------------------------------------------
def test_search_and_resume_with_a_composite(fakes, tmp_path) -> None:
    settings = SearchSettings(space=ToySpace.name, estimator="fake_pos+fake_signed=0.5", budget=5, population=2,
                              sample=1, dataset="synthetic", batch_size=8, estimator_settings={"normalisation": HAND})
    run = start_search(settings, run_dir=tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    recorded = config["scoring"]["estimator_settings"]["parts"]
    assert [p["normalisation"] for p in recorded] == [HAND["fake_pos"], HAND["fake_signed"]]
    resume_search(run, {"budget": 9})
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert len(history) == 9 and all(r["status"] == "ok" for r in history)
    scorer = Scorer(ScoringSettings.from_dict(config["scoring"]))
    for record in history:
        assert record["score"] == scorer.score(record["genotype"]).score


def test_correlate_scores_a_composite_beside_single_estimators(fakes, tmp_path, monkeypatch, capsys) -> None:
    archs = ["conv-conv-conv", "conv-pool-conv", "pool-pool-conv", "pool-pool-pool", "conv-pool-pool"]
    table = tmp_path / "archs.csv"
    table.write_text("arch,acc\n" + "".join(f"{a},{50 + i}\n" for i, a in enumerate(archs)))
    out = tmp_path / "out"
    code, _, err = run_cli(monkeypatch, capsys, "correlate", "--space", ToySpace.name, "--estimator",
                                "fake_signed=1+fake_pos,fake_pos", "--archs-file", str(table), "--truth-column", "acc",
                                "--dataset", "synthetic", "--batch-size", "8", "--out", str(out))
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    composite = summary["results"]["fake_signed+fake_pos"]
    assert [p["name"] for p in composite["settings"]["parts"]] == ["fake_signed", "fake_pos"]
    config = resolve_scoring(ToySpace.name, "fake_signed+fake_pos", dataset="synthetic", batch_size=8)
    scorer = Scorer(config)
    with (out / "scores.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["fake_signed+fake_pos"]) for r in rows] == [scorer.score(a).score for a in archs]


def test_estimators_command_lists_composites_and_their_parts(monkeypatch, capsys) -> None:
    from evonas.cli.app import console

    monkeypatch.setattr(console, "width", 250)  # one table row per line
    code, out, err = run_cli(monkeypatch, capsys, "estimators")
    assert code == 0, err
    assert "sweet_snip+sweet_ntk+jacov" in out and "parts: sweet_snip, sweet_ntk, jacov" in out
