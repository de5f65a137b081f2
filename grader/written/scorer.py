"""Written answers -> PartResults: one scorer that owns the encoder, the judge, the part indexes and their caches.

Every written answer of a chunk is scored in one pass: results cached under a key of everything
they depend on come from the cache; the rest are encoded in one batch, judged in one batched
call, then assessed, calibrated and phrased one by one (grader.written.scoring, grader.feedback).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from grader import __version__
from grader.cache import Cache, digest
from grader.feedback import MISSING, written_feedback
from grader.fingerprint import code_fingerprint
from grader.report import PartResult
from grader.rubric import RubricSet
from grader.scorer import PartResults, RunStats, done
from grader.submission import Submission
from grader.written.embedding import Encoder
from grader.written.scoring import (
    Assessment,
    PartIndex,
    assess_answers,
    background_sentences,
    build_indexes,
    final_points,
    graded_confidence,
)

if TYPE_CHECKING:
    from grader.options import GradeOptions  # only a type here: grader.options imports this package
    from grader.written.judge import Judge


def load_judge(name: str, device: str | None = None) -> Judge:
    """The judge named by `name` (a model shipped with grader, or a path), loaded offline (on `device`, if given).

    One instance per (name, device) in a process, as the encoder's model is: every grader built in
    the process (a review session's regrades, the command line called as a library) shares its
    memo of judged pairs instead of loading the weights and judging the same pairs again.
    """
    from grader.written.embedding import default_device

    return _loaded_judge(name, device or default_device())


@lru_cache(maxsize=4)
def _loaded_judge(name: str, device: str) -> Judge:
    """The cache behind load_judge, keyed on the resolved device (None and "cpu" are one judge on a CPU)."""
    from grader.written.judge import Judge

    return Judge.load(name, device=device)


def cached_models(
    cache_dir: Path | None, model: str | None = None, judge: str | None = None, int8: bool = False
) -> tuple[Encoder, Judge | None]:
    """The encoder and the judge (None: no judge) with their outputs kept in the SQLite cache at `cache_dir`.

    For benchmarks and sweeps that grade the same answers run after run: after a change to the
    scorer, not to the models, a rerun reads vectors and the judge's probabilities from disk.
    """
    cache = Cache(cache_dir) if cache_dir is not None else None
    loaded = load_judge(judge) if judge else None
    if loaded is not None:
        loaded.store = cache
    return Encoder(model, int8=int8, cache=cache), loaded


def model_identity(encoder: Encoder, judge: Judge | None) -> str:
    """What produced a grade (reports, caches, resumability): the encoder, plus the judge when one is used."""
    return encoder.identity + (f"+judge:{judge.identity}" if judge else "")


def part_result(index: PartIndex, assessment: Assessment) -> PartResult:
    """The report entry for an assessed written answer: points, evidence and feedback."""
    if "no_answer" in assessment.flags:  # only a placeholder ("YOUR ANSWER HERE"): no answer at all
        return PartResult(
            part_id=index.part_id,
            kind="written",
            status="missing",
            points=0.0,
            max_points=index.part.max_points,
            confidence=1.0,
            feedback=[MISSING + " (only a placeholder was left)"],
            flags=["no_answer"],
        )
    points, calibrated = final_points(index, assessment)
    confidence, read = graded_confidence(index, assessment, points)
    return PartResult(
        part_id=index.part_id,
        kind="written",
        status="graded",
        points=points,
        max_points=index.part.max_points,
        raw_score=assessment.raw_score,
        calibrated=calibrated,
        confidence=confidence,
        confidence_signals=read,
        feedback=written_feedback(index.part, assessment),
        key_points=assessment.key_points,
        misconceptions=assessment.misconceptions,
        warnings=assessment.warnings,
        flags=sorted(assessment.flags),
        needs_review=assessment.held_for_review,
        language=assessment.language,
    )


def part_key(index: PartIndex, rubrics: RubricSet, model_identity: str) -> bytes:
    """Everything a written part's result depends on, except the answer: a rubric edit elsewhere keeps it.

    The part's own definition, its question stem, the other questions' reference sentences
    (the off-topic contrast), the scoring settings, the model, the grader version and the
    fingerprint of the grading code.
    """
    background = [
        t
        for r, p in rubrics.parts()
        if p.kind == "written" and r.id != index.rubric.id
        for t in background_sentences(p)
    ]
    return digest(
        __version__,
        code_fingerprint(),
        model_identity,
        index.config.model_dump_json(),
        index.rubric.question or "",
        index.part.model_dump_json(),
        "\n".join(background),
    )


class WrittenScorer:
    """Scores the written parts of a chunk of submissions (the Scorer protocol of grader.scorer).

    Loads the encoder and the judge the options name unless given them, links both to the
    on-disk cache, and embeds the rubric texts once; build one per process and reuse it.
    """

    def __init__(
        self,
        rubrics: RubricSet,
        options: GradeOptions,
        cache: Cache | None = None,
        stats: RunStats | None = None,
        encoder: Encoder | None = None,
        judge: Judge | None = None,
    ) -> None:
        self.options = options
        self.cache = cache
        self.stats = stats or RunStats()
        self.encoder = encoder or Encoder(options.model, cache=cache, int8=options.int8, device=options.device)
        self.judge = judge or (load_judge(options.judge, options.device) if options.judge else None)
        if self.judge is not None and cache is not None:
            self.judge.store = cache
        self.indexes = build_indexes(rubrics, self.encoder, options.scoring, self.judge)
        self.identity = model_identity(self.encoder, self.judge)
        self.part_keys = {pid: part_key(ix, rubrics, self.identity) for pid, ix in self.indexes.items()}

    def submit(self, chunk: Sequence[Submission]) -> list[PartResults]:
        """Score every written answer of a chunk: cached results first, then one encode for the rest."""
        started = time.perf_counter()
        jobs: list[tuple[int, str, str, bytes]] = []
        for i, submission in enumerate(chunk):
            for answer in submission.answers:
                if answer.part_id in self.indexes:
                    key = digest(self.part_keys[answer.part_id], answer.text)
                    jobs.append((i, answer.part_id, answer.text, key))
        cached = self.cache.get_results([j[3] for j in jobs]) if self.cache else {}
        todo = [j for j in jobs if j[3] not in cached]
        encode_before, judge_before = self.encoder.encode_s, self.stats.judge_s
        scored = self.score_answers([(part_id, text) for _, part_id, text, _ in todo])
        fresh_by_key = {key: result for (_, _, _, key), result in zip(todo, scored)}
        fresh: list[tuple[bytes, str]] = []
        results: list[PartResults] = [{} for _ in chunk]
        for i, part_id, _, key in jobs:
            if key in cached:
                result = PartResult.model_validate_json(cached[key])
                self.stats.n_parts_from_cache += 1
            else:
                result = fresh_by_key[key]
                fresh.append((key, result.model_dump_json()))
                self.stats.n_parts_scored += 1
            results[i][part_id] = done(result)
        if self.cache and fresh:
            self.cache.put_results(fresh)
        encoded = self.encoder.encode_s - encode_before
        self.stats.encode_s += encoded
        self.stats.score_s += time.perf_counter() - started - encoded - (self.stats.judge_s - judge_before)
        self.encoder.trim(self.options.memo_limit)
        return results

    def score_answers(self, answers: Sequence[tuple[str, str]]) -> list[PartResult]:
        """Score (part id, answer text) pairs: one encode, one batched judge call, then per-answer results."""
        judge_before = self.judge.classify_s if self.judge is not None else 0.0
        assessments = assess_answers(self.indexes, answers, self.encoder, self.judge, self.options.scoring.window)
        if self.judge is not None:
            self.stats.judge_s += self.judge.classify_s - judge_before
        return [part_result(self.indexes[pid], a) for (pid, _), a in zip(answers, assessments)]

    def close(self) -> None:
        """Unlink the judge from the cache the Grader is about to close (the models stay loaded for reuse)."""
        if self.judge is not None and self.cache is not None and self.judge.store is self.cache:
            self.judge.store = None
        self.cache = None
