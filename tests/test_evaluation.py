"""The agreement harness (grader.evaluation, `grader eval`) on a tiny synthetic CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from grader.evaluation import (
    EvalError,
    EvalResult,
    accuracy,
    build_rubric,
    choose_exemplars,
    evaluate,
    fit_threshold,
    load_dataset,
    macro_f1,
    pearson,
    quadratic_weighted_kappa,
    questions_of,
    rmse,
    round_to_step,
    rubric_set,
    spearman,
)
from grader.written import ScoringConfig

from .conftest import DATA

TINY = DATA / "eval_tiny.csv"


def _rewrite(tmp_path: Path, drop: tuple[str, ...] = (), edit=None, name: str = "data.csv") -> Path:  # noqa: ANN001
    """A copy of the tiny CSV without some columns, with `edit(rows)` applied."""
    with TINY.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if edit:
        edit(rows)
    fields = [c for c in rows[0] if c not in drop]
    path = tmp_path / name
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture()
def two_way(tmp_path: Path) -> Path:
    return _rewrite(tmp_path, drop=("score", "max_score"), name="two_way.csv")


# -- metrics on known values ----------------------------------------------------------------------


def test_perfect_agreement_scores_one():
    gold = [0, 0.5, 1, 1.5, 2, 2]
    assert pearson(gold, gold) == pytest.approx(1.0)
    assert spearman(gold, gold) == pytest.approx(1.0)
    assert rmse(gold, gold) == 0.0
    ratings = round_to_step(gold, 0.5)
    assert quadratic_weighted_kappa(ratings, ratings) == pytest.approx(1.0)
    assert accuracy([0, 1, 1], [0, 1, 1]) == 1.0
    assert macro_f1([0, 1, 1], [0, 1, 1]) == 1.0


def test_qwk_known_confusions():
    assert quadratic_weighted_kappa([0, 0, 1, 1, 2, 2], [0, 1, 1, 2, 2, 2]) == pytest.approx(0.75)
    assert quadratic_weighted_kappa([0, 1, 2, 3], [3, 2, 1, 0]) == pytest.approx(-1.0)
    assert quadratic_weighted_kappa([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)


def test_other_metrics_known_values():
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 1, 1], [1, 2, 3]) is None  # undefined, not NaN (JSON has no NaN)
    # class 1: tp=1 fp=1 fn=1 -> F1 0.5; class 0: tp=1 fp=1 fn=1 -> 0.5
    assert macro_f1([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(0.5)
    assert accuracy([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(0.5)


def test_rounding_to_the_dataset_scale():
    assert list(round_to_step([0, 0.24, 0.25, 0.74, 0.875, 2.5], 0.5)) == [0, 0, 1, 1, 2, 5]
    assert list(round_to_step([0.4, 0.5, 1.49], 1.0)) == [0, 1, 1]


def test_threshold_separates_classes():
    t = fit_threshold([0.1, 0.2, 0.3, 0.7, 0.8], [0, 0, 0, 1, 1])
    assert 0.3 < t < 0.7


# -- loading and validation -----------------------------------------------------------------------


def test_loads_points_and_two_way(two_way: Path):
    ds = load_dataset(TINY)
    assert ds.task == "points" and len(ds.rows) == 30 and ds.train_split == "train"
    qs = questions_of(ds)
    assert {q.max_score for q in qs.values()} == {1.0, 2.0}
    assert qs["ice"].alternatives == ["Frozen water takes up more volume for the same mass than liquid water."]
    tw = load_dataset(two_way)
    assert tw.task == "2way"
    assert {r.score for r in tw.rows} == {0.0, 1.0}
    assert {r.max_score for r in tw.rows} == {1.0}


def test_missing_column_names_file_and_column(tmp_path: Path):
    path = _rewrite(tmp_path, drop=("reference_answer",))
    with pytest.raises(EvalError) as info:
        load_dataset(path)
    (line,) = info.value.problems
    assert str(path) in line and "row 1" in line and "reference_answer" in line


def test_missing_score_and_label(tmp_path: Path):
    path = _rewrite(tmp_path, drop=("score", "label_2way"))
    with pytest.raises(EvalError, match=r"score \(or label_2way\)"):
        load_dataset(path)


def test_bad_scores_name_row_and_column(tmp_path: Path):
    def edit(rows: list[dict]) -> None:
        rows[1]["score"] = "two"  # spreadsheet row 3
        rows[4]["score"] = "5"  # row 6: above max_score 2

    path = _rewrite(tmp_path, edit=edit)
    with pytest.raises(EvalError) as info:
        load_dataset(path)
    problems = info.value.problems
    assert any("row 3: score: not a number: 'two'" in p and str(path) in p for p in problems)
    assert any("row 6: score: 5 exceeds max_score 2" in p for p in problems)


def test_bad_label(tmp_path: Path):
    def edit(rows: list[dict]) -> None:
        rows[0]["label_2way"] = "partially"

    path = _rewrite(tmp_path, drop=("score", "max_score"), edit=edit)
    with pytest.raises(EvalError, match=r"row 2: label_2way: expected correct or incorrect"):
        load_dataset(path)


def test_max_score_flag_overrides_and_checks(tmp_path: Path):
    ds = load_dataset(TINY, max_score=4)
    assert {q.max_score for q in questions_of(ds, 4).values()} == {4.0}
    with pytest.raises(EvalError, match="exceeds --max-score 1"):
        load_dataset(TINY, max_score=1)


def test_unknown_split_lists_the_available_ones(encoder):
    with pytest.raises(EvalError, match="available: 'train', 'test'"):
        evaluate(TINY, split="unseen_domains", encoder=encoder)


def test_rubrics_are_valid_in_memory():
    ds = load_dataset(TINY)
    q = questions_of(ds)["ice"]
    whole = build_rubric(q, "whole")
    (kp,) = whole.parts[0].key_points
    assert kp.points == 2 and kp.paraphrases == q.alternatives
    q.reference_answer = "Ice is less dense than water. So it floats on top."
    split = build_rubric(q, "sentences", exemplars=ds.rows[:2])
    assert [k.points for k in split.parts[0].key_points] == [1.0, 1.0]
    assert len(split.parts[0].exemplars) == 2
    rs = rubric_set([whole])
    assert rs.part_ids() == ["ice.a"] and len(rs.sha256) == 64


# -- exemplars and determinism --------------------------------------------------------------------


def test_exemplar_draw_is_seeded_and_spread():
    rows = load_dataset(TINY).rows
    pool = [r for r in rows if r.question_id == "ice" and r.split == "train"]
    a = choose_exemplars(pool, 2, seed=3, question_id="ice")
    assert a == choose_exemplars(pool, 2, seed=3, question_id="ice")
    assert len(a) == 2 and {r.score for r in a} != {a[0].score}  # one low, one high
    draws = {tuple(r.row for r in choose_exemplars(pool, 2, seed=s, question_id="ice")) for s in range(8)}
    assert len(draws) > 1


def test_exemplars_are_removed_from_the_evaluated_rows(encoder):
    base, base_pred = evaluate(TINY, split="train", encoder=encoder, return_predictions=True)
    result, pred = evaluate(TINY, split="train", exemplars=2, seed=1, encoder=encoder, return_predictions=True)
    assert base.n == 18 and result.n == 18 - 3 * 2 and result.n_exemplar_rows == 6
    assert "grader_no_exemplars" in result.metrics
    rows = load_dataset(TINY).rows
    exemplar_rows = {
        r.row
        for q in ("ice", "hash", "thunder")
        for r in choose_exemplars([x for x in rows if x.question_id == q and x.split == "train"], 2, 1, q)
    }
    evaluated = {r.row for r in pred.rows}
    assert len(exemplar_rows) == 6 and not evaluated & exemplar_rows
    assert evaluated | exemplar_rows == {r.row for r in base_pred.rows}


def test_unseen_answers_split_takes_exemplars_from_train(encoder):
    result, pred = evaluate(TINY, split="test", exemplars=2, seed=0, encoder=encoder, return_predictions=True)
    assert result.n == 12  # every test row is still evaluated: the exemplars came from train
    assert result.n_exemplar_rows == 6
    assert all(r.split == "test" for r in pred.rows)
    assert any("drawn from 'train'" in n for n in result.notes)
    assert result.settings.n_fit == 18 - 6  # train rows used as exemplars are not fitted on


def test_same_seed_same_result(encoder, two_way: Path):
    runs = [
        evaluate(two_way, split="test", exemplars=2, seed=7, limit=10, encoder=encoder).model_dump(exclude={"timing_s"})
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    m = runs[0]["metrics"]
    assert set(m) == {"baseline", "grader", "grader_no_exemplars"}
    for system in m.values():
        assert 0 <= system["accuracy"] <= 1 and 0 <= system["macro_f1"] <= 1 and system["threshold"] is not None
    lead = runs[0]["lead"]  # the grader's lead over the baseline, with its interval over questions
    grader, baseline = m["grader"]["accuracy"], m["baseline"]["accuracy"]
    assert lead["metric"] == "accuracy" and lead["difference"] == pytest.approx(grader - baseline, abs=1e-4)
    assert lead["low"] <= lead["difference"] <= lead["high"]


def test_points_metrics_and_baseline(encoder):
    result = evaluate(TINY, split="test", encoder=encoder)
    assert result.task == "points" and result.settings.qwk_step == 1.0 and result.settings.fit_split == "train"
    for name in ("baseline", "grader"):
        m = result.metrics[name]
        assert m.pearson is not None and m.rmse is not None and m.qwk is not None
        assert m.accuracy is None
    # the grader tells the right answers from the wrong ones on this easy set
    assert result.metrics["grader"].spearman > 0.5
    assert result.lead is not None and result.lead.metric == "pearson" and result.lead.questions == result.n_questions


def test_no_split_column_fits_on_the_evaluated_rows(tmp_path: Path, encoder):
    path = _rewrite(tmp_path, drop=("split", "max_score"))
    result = evaluate(path, encoder=encoder)
    assert result.n == 30 and result.settings.fit_split is None
    assert any("no train split" in n for n in result.notes)
    assert any("highest score observed" in n for n in result.notes)


# -- the CLI --------------------------------------------------------------------------------------


def test_cli_json_parses(two_way: Path):
    from typer.testing import CliRunner

    from grader.cli import app

    res = CliRunner().invoke(app, ["eval", str(two_way), "--split", "test", "--exemplars", "1", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    result = EvalResult.model_validate(data)
    assert result.task == "2way" and result.settings.exemplars == 1
    assert {"baseline", "grader"} <= set(data["metrics"])


def test_cli_table_and_errors(tmp_path: Path):
    from typer.testing import CliRunner

    from grader.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["eval", str(TINY), "--split", "test", "--keypoints", "whole"])
    assert res.exit_code == 0, res.output
    assert "plain-cosine baseline" in res.stdout and "pearson" in res.stdout
    assert "grader - baseline: pearson" in res.stdout and "questions resampled" in res.stdout
    bad = _rewrite(tmp_path, drop=("question",))
    res = runner.invoke(app, ["eval", str(bad)])
    assert res.exit_code == 2
    assert "missing column(s): question" in res.output


def test_change_between_two_runs_of_the_same_rows(encoder, two_way: Path):
    from grader.evaluation import change_between

    before = evaluate(two_way, split="test", encoder=encoder, return_predictions=True)[1]
    strict = evaluate(
        two_way, split="test", encoder=encoder, scoring=ScoringConfig(holistic_weight=0.0), return_predictions=True
    )[1]
    same = change_between(before, before)
    assert same is not None and same.metric == "accuracy" and same.difference == 0 and same.low == same.high == 0
    moved = change_between(before, strict)
    old = accuracy(before.decisions["grader"], before.gold.astype(int))
    new = accuracy(strict.decisions["grader"], strict.gold.astype(int))
    assert moved is not None and moved.difference == pytest.approx(new - old, abs=1e-4)
    other = evaluate(two_way, split="train", encoder=encoder, return_predictions=True)[1]
    with pytest.raises(ValueError, match="different rows"):
        change_between(before, other)
