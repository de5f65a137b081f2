"""Shared fixtures: the shipped rubrics and one embedding model per test session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from grader.ray_backend import LOCAL_HEAD_ENV
from grader.rubric import RubricSet, load_rubric_dir
from grader.written.embedding import Encoder

# The CLI caches embeddings under ~/.cache/grader by default; tests keep theirs private.
os.environ["GRADER_CACHE_DIR"] = tempfile.mkdtemp(prefix="grader-test-cache-")
# The Ray clusters tests start stay on this machine's loopback (set before any test imports ray).
for _name, _value in LOCAL_HEAD_ENV.items():
    os.environ.setdefault(_name, _value)
# ... with a token of the session's own (made by local_cluster), not one in the user's ~/.ray
os.environ.setdefault("RAY_AUTH_TOKEN_PATH", os.path.join(tempfile.mkdtemp(prefix="grader-ray-token-"), "auth_token"))

ROOT = Path(__file__).resolve().parent.parent
RUBRICS = ROOT / "rubrics"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def rubrics() -> RubricSet:
    return load_rubric_dir(RUBRICS)


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    """The bundled model, loaded once for the whole session."""
    return Encoder()


@pytest.fixture(scope="session")
def judge():
    """The default cross-encoder judge, loaded once for the whole session."""
    from grader.pipeline import load_judge
    from grader.written.judge import DEFAULT_NAME

    return load_judge(DEFAULT_NAME)


def seed_model_outputs(cache_dir: Path, judge=None, *, vectors: bool = True) -> Path:
    """Put what this session's models have computed so far into the cache at `cache_dir`.

    A subprocess or a Ray actor grading from that cache then skips the forward passes this process
    already made (vectors by model and text, the judge's probabilities by pair) but still scores,
    caches and reports every part itself: no part result is copied. Keys are the ones the encoder
    and the judge would write (grader.written.embedding, grader.written.judge), so a seeded entry is exactly the
    entry a cold run would have stored.
    """
    import json

    from grader.cache import Cache
    from grader.written.embedding import _MEMO

    cache = Cache(cache_dir)
    try:
        if vectors:
            for identity, memo in _MEMO.items():
                cache.put_vectors(identity, list(memo.items()))
        if judge is not None:
            cache.put_results((judge._store_key(p), json.dumps(v.tolist())) for p, v in list(judge._memo.items()))
    finally:
        cache.close()
    return cache_dir


@pytest.fixture(scope="session")
def written_grader(rubrics: RubricSet, encoder: Encoder, judge):
    """A Grader over the shipped rubrics with the default options, except that it does not run code."""
    from grader.pipeline import GradeOptions, Grader

    grader = Grader(rubrics, GradeOptions(run_code=False), encoder=encoder, judge=judge)
    yield grader
    grader.close()


SOFIA = """Question 3

- a) Sí, el momento sigue ayudando. La convexidad solo garantiza que hay un único mínimo global, pero el
descenso de gradiente puede avanzar muy despacio en un valle alargado y oscilar entre las paredes; el
momento promedia los gradientes pasados y acelera la convergencia en la dirección consistente.
"""


@pytest.fixture(scope="session")
def graded_class(tmp_path_factory, rubrics: RubricSet, encoder: Encoder, judge) -> Path:
    """The sample class graded once (written parts), plus a copy of kim (a group of two, a pair to
    flag) and an answer in Spanish; rubrics copied beside it so a test may edit them. Tests copy it."""
    import shutil

    from grader.batch import RunRecord, grade_class
    from grader.intake.lms import gather_sources
    from grader.options import GradeOptions

    base = tmp_path_factory.mktemp("graded-class")
    shutil.copytree(RUBRICS, base / "rubrics")
    subs = base / "submissions"
    subs.mkdir()
    for path in sorted((ROOT / "submissions").iterdir()):
        if path.is_file() and path.suffix in (".txt", ".md"):
            shutil.copy(path, subs / path.name)
    shutil.copy(subs / "kim.txt", subs / "kimcopy.txt")
    (subs / "sofia.txt").write_text(SOFIA, encoding="utf-8")
    rubric_set = load_rubric_dir(base / "rubrics")
    options = GradeOptions(run_code=False, cache_dir=base / "cache")
    record = RunRecord(inputs=[subs], rubrics=base / "rubrics", options=options)
    sources, _, _ = gather_sources([subs], None, rubric_set.part_ids())
    grade_class(record, rubric_set, sources, base / "out", encoder=encoder, judge=judge)
    return base


@pytest.fixture
def class_copy(graded_class: Path, tmp_path: Path) -> Path:
    """A private copy of the graded class (its out/, rubrics/ and submissions/), run.json pointing at the copy."""
    import shutil

    from grader.batch import read_run_record, write_run_record

    shutil.copytree(graded_class, tmp_path / "class")
    base = tmp_path / "class"
    record = read_run_record(base / "out")
    record = record.model_copy(update={
        "inputs": [base / "submissions"], "rubrics": base / "rubrics",
        "options": record.options.model_copy(update={"cache_dir": base / "cache"}),
    })
    write_run_record(base / "out", record)
    return base


MODEL_FIXTURES = {"encoder", "judge", "written_grader"}
"""Fixtures that load the models: a test using one is `slow` (the quick loop is `pytest -m "not slow"`)."""


def _needs_bubblewrap(item: pytest.Item) -> bool:
    """Guarded by a skipif that names bubblewrap: the test runs student code in the sandbox."""
    return any("bubblewrap" in str(mark.kwargs.get("reason", "")) for mark in item.iter_markers("skipif"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark by what a test needs, so no test file has to remember to: models are slow, bubblewrap is `sandbox`."""
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if _needs_bubblewrap(item):
            item.add_marker(pytest.mark.sandbox)
