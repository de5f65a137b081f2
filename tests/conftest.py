"""Shared fixtures: the shipped rubrics and one embedding model per test session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from grader.embedding import Encoder
from grader.ray_backend import LOCAL_HEAD_ENV
from grader.rubric import RubricSet, load_rubric_dir

# The CLI caches embeddings under ~/.cache/grader by default; tests keep theirs private.
os.environ["GRADER_CACHE_DIR"] = tempfile.mkdtemp(prefix="grader-test-cache-")
# The Ray clusters tests start stay on this machine's loopback (set before any test imports ray).
for _name, _value in LOCAL_HEAD_ENV.items():
    os.environ.setdefault(_name, _value)

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
    from grader.judge import DEFAULT_NAME

    return load_judge(DEFAULT_NAME)


@pytest.fixture(scope="session")
def written_grader(rubrics: RubricSet, encoder: Encoder, judge):
    """A Grader over the shipped rubrics with the default options, except that it does not run code."""
    from grader.pipeline import GradeOptions, Grader

    grader = Grader(rubrics, GradeOptions(run_code=False), encoder=encoder, judge=judge)
    yield grader
    grader.close()


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
