"""Written answers: read an answer sentence by sentence and score it against the rubric's key points.

``scorer`` (WrittenScorer) turns a chunk's written answers into PartResults, over ``scoring``
(units, evidence, points and flags), ``embedding`` (the bi-encoder: where a key point is
discussed), ``judge`` (the cross-encoder: whether the answer states it or denies it),
``lexical`` and ``sentences`` (the text checks and the sentence splitter), ``language``
(answers in another language) and ``calibration`` (the raw-score map fitted on exemplars).
The words a student reads come from grader.feedback (outside the room: grader.scorer uses its
MISSING for code parts too).

Its modules import each other as submodules (grader.written.x), never names from this package,
and nothing at run time that imports this package back (grader.options, grader.pipeline,
grader.batch; grader.feedback names Assessment only as a type), so any module can be imported first.
"""

from grader.written.embedding import DEFAULT_MODEL, Encoder, ModelNotFound
from grader.written.judge import DEFAULT_NAME as DEFAULT_JUDGE
from grader.written.judge import Judge, JudgeNotFound
from grader.written.scorer import WrittenScorer, cached_models, load_judge, model_identity
from grader.written.scoring import Assessment, PartIndex, ScoringConfig, all_answer_texts, whole_text
from grader.written.sentences import split_sentences

__all__ = [
    "Assessment",
    "DEFAULT_JUDGE",
    "DEFAULT_MODEL",
    "Encoder",
    "Judge",
    "JudgeNotFound",
    "ModelNotFound",
    "PartIndex",
    "ScoringConfig",
    "WrittenScorer",
    "all_answer_texts",
    "cached_models",
    "load_judge",
    "model_identity",
    "split_sentences",
    "whole_text",
]
