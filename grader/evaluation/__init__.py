"""Measure agreement with human graders on a CSV of graded answers (``grader eval``).

The harness turns a table of human-graded short answers into rubrics in memory,
grades every answer with the code ``grader grade`` uses (``Grader`` +
``written_result``), and reports how well the grader's points agree with the
human scores, beside a plain-cosine baseline measured in the same run.

Input
-----
A CSV (comma, semicolon or tab separated; UTF-8, a BOM is fine) with the columns
``question_id, question, reference_answer, student_answer`` and either ``score``
(points) or ``label_2way`` (``correct``/``incorrect``, read as 1/0 points out of 1).
Optional: ``max_score`` (SAF's ``max_score_observed`` is accepted as the same
thing), ``split``, ``reference_answers`` (alternative reference answers joined
by " || "). Column names are matched case-insensitively, spaces as underscores.
The maximum per question is ``--max-score`` if given, else the largest
``max_score`` of the question's rows, else the largest score observed for that
question. Missing columns, unparseable or out-of-range scores are reported as
``file: row N: column: reason`` (N as a spreadsheet shows it: the header is row 1).

Rubrics
-------
One rubric per question, one written part, ``max_points`` = the question's
maximum; the part prompt is the question, key-point labels a short version of
the question. ``--keypoints``:

* ``sentences`` (default): one key point per sentence of the reference
  answer, points split evenly. A one-sentence reference is one key point with
  the alternatives (``reference_answers``) as its paraphrases; a multi-sentence
  one drops the alternatives (an alternative is a whole answer, not a
  paraphrase of one of its sentences).
* ``whole``: one key point = the whole reference answer, the alternatives as
  its paraphrases.

``sentences`` is the default because it did better on the headline metrics of
every train split (whole train splits, no --limit, seed 0, the ScoringConfig
defaults of 2026-11-26; whole -> sentences): SciEntsBank train accuracy 0.643 ->
0.655, Beetle train accuracy 0.681 -> 0.681 (nearly all Beetle references are
one sentence), SAF training Pearson 0.531 -> 0.546, Spearman 0.427 -> 0.448,
Pearson on fractions 0.189 -> 0.233. Its cost: uncalibrated SAF points run
lower (RMSE 0.720 -> 0.797, QWK 0.481 -> 0.371), since a student must match
every sentence of a long reference, grading notes included, for full credit.

The rubrics of one run form one in-memory RubricSet per split (the questions
that split's rows ask), like an assignment: the scorer's off-topic guard compares
an answer with the other questions of the same set.

Exemplars (``--exemplars K``)
-----------------------------
For each question K graded answers are drawn with the seed (one generator per
question, seeded by (seed, question id), so the draw does not depend on which
other questions are present). They come from the question's rows in the train
split when the question appears there (an unseen-answers test split then keeps
all its rows), else from the evaluated rows. Either way, exemplar rows are
removed from the evaluated rows and from the rows the baseline and thresholds
are fitted on. The draw spreads over the human scores: the question's candidate
rows, sorted by score (ties in random order), are cut into K equal slices and
one answer is drawn from each, as a TA picking a few answers across the range
would. With K > 0 the result also holds ``grader_no_exemplars``: the same rows
graded without exemplars, so the gain is measured on identical rows.

Metrics
-------
Each system gives points per answer: the grader its ``PartResult.points`` (on points data
mapped through a line fitted on the train split, the same treatment the baseline gets); the
baseline, the cosine of the all-MiniLM-L6-v2 embeddings of the whole student
answer and the whole reference answer (max over the alternatives), mapped to a
fraction of the maximum by a least-squares line fitted on the train split,
clipped to [0, 1] and multiplied by the maximum.

* Pearson, Spearman and RMSE on points (the dataset's units), pooled over all rows.
* QWK (quadratic weighted kappa) on rounded points: points are rounded to the
  dataset's scale, integers when every human score is an integer, else halves
  (SAF: 0, 0.5, ..., max), and the halves doubled to integers for the kappa.
  For ``label_2way`` data QWK is taken on the 2-way decisions below (with two
  classes it is Cohen's kappa).
* ``pearson_fraction`` (points data whose questions have different maxima):
  Pearson on points / max. SAF's maxima run from 0.5 to 3.5, so the pooled
  Pearson on points mostly rewards knowing each question's maximum (the
  baseline's fitted line reaches 0.85 on SAF training that way, 0.20 on fractions).
* ``label_2way`` data: accuracy and macro-F1 of "correct iff predicted fraction
  > t", with t fitted on the train split (``train``/``training``) by maximising
  accuracy; the baseline's threshold is fitted the same way on its cosine. With
  no train split the thresholds and lines are fitted on the evaluated rows
  themselves (optimistic), and the result says so in ``notes``.

Per question, the grader's exact agreement, MAE and QWK are reported too
(``per_question``), and ``confidence_auroc`` says how well the grader's confidence finds its
own large errors: AUROC of (1 - confidence) for answers off by 25% of the maximum or more,
the order a review queue shows them in. ``grader eval --predictions FILE`` writes one CSV row
per evaluated answer (gold, each system's points and decision, confidence, flags).

``lead`` is the grader's lead over the baseline on the headline metric (accuracy, or Pearson
on points) with a 95% interval from resampling whole questions (``grader.evaluation.intervals``):
answers to one question rise and fall together, so a split of 15 questions is 15 draws, not 733.

``--limit N`` evaluates a seeded sample of N rows and fits on at most N train
rows (for quick looks and sweeps; report numbers without it).
"""

from grader.evaluation.dataset import (
    Dataset,
    EvalError,
    KeypointMode,
    Question,
    Row,
    build_rubric,
    choose_exemplars,
    key_points_for,
    load_dataset,
    questions_of,
    resolve_split,
    rubric_set,
    short_label,
)
from grader.evaluation.intervals import Lead, lead, question_interval
from grader.evaluation.metrics import (
    Metrics,
    QuestionMetrics,
    accuracy,
    auroc,
    confidence_auroc,
    fit_line,
    fit_threshold,
    macro_f1,
    mae,
    pearson,
    quadratic_weighted_kappa,
    rmse,
    round_to_step,
    spearman,
)
from grader.evaluation.run import (
    EvalResult,
    EvalSession,
    EvalSettings,
    Graded,
    Predictions,
    change_between,
    evaluate,
    lead_over_baseline,
    metric_rows,
    per_question,
    write_predictions,
)

__all__ = [
    "Dataset",
    "EvalError",
    "EvalResult",
    "EvalSession",
    "EvalSettings",
    "Graded",
    "KeypointMode",
    "Lead",
    "Metrics",
    "Predictions",
    "Question",
    "QuestionMetrics",
    "Row",
    "accuracy",
    "auroc",
    "build_rubric",
    "change_between",
    "choose_exemplars",
    "confidence_auroc",
    "evaluate",
    "fit_line",
    "fit_threshold",
    "key_points_for",
    "lead",
    "lead_over_baseline",
    "load_dataset",
    "macro_f1",
    "mae",
    "metric_rows",
    "pearson",
    "per_question",
    "quadratic_weighted_kappa",
    "question_interval",
    "questions_of",
    "resolve_split",
    "rmse",
    "round_to_step",
    "rubric_set",
    "short_label",
    "spearman",
    "write_predictions",
]
