"""The Ray backend's setup, without a cluster: how it says Ray is missing, how the rubrics travel, the head's token."""

from __future__ import annotations

import shutil
import subprocess
import sys

from grader.ray_backend import RubricFiles
from grader.rubric import load_rubric_dir

from .conftest import ROOT, RUBRICS


def test_backend_ray_without_ray_says_how_to_install_it(tmp_path):
    no_ray = "import sys; sys.modules['ray'] = None; from grader.cli import app; app()"
    command = [
        sys.executable,
        "-c",
        no_ray,
        "grade",
        str(ROOT / "submissions"),
        "--backend",
        "ray",
        "--no-cache",
        "--out",
        str(tmp_path / "out"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "pip install 'grader[ray]'" in " ".join(result.stderr.split())
    assert not (tmp_path / "out" / "reports").exists()


def test_an_unknown_backend_is_refused(tmp_path):
    command = [sys.executable, "-m", "grader.cli", "grade", str(ROOT / "submissions"), "--backend", "spark"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "--backend must be local or ray" in result.stderr


def test_rubrics_travel_as_bytes_and_rebuild_the_same_set(tmp_path):
    """A reference outside the rubric directory travels too; the rebuilt set hashes the same."""
    course = tmp_path / "course"
    shutil.copytree(RUBRICS, course / "rubrics")
    shutil.move(course / "rubrics" / "reference", course / "reference")
    for path in (course / "rubrics").glob("*.yaml"):
        path.write_text(path.read_text().replace("reference/", "../reference/"))
    rubrics = load_rubric_dir(course / "rubrics")
    files = RubricFiles.of(rubrics)
    assert files.directory == "rubrics" and any(name.startswith("reference/") for name in files.files)
    rebuilt = files.unpack(tmp_path / "elsewhere")
    assert rebuilt.sha256 == rubrics.sha256
    assert rebuilt.rubrics == rubrics.rubrics
    for (rubric, part), (rubric2, part2) in zip(rubrics.parts(), rebuilt.parts()):
        if part.code is not None:
            here, there = rubrics.reference_path(rubric, part), rebuilt.reference_path(rubric2, part2)
            assert there.is_relative_to(tmp_path / "elsewhere") and there.read_bytes() == here.read_bytes()


def test_a_local_head_gets_a_token_only_its_owner_can_read(tmp_path, monkeypatch):
    """A fresh machine has no Ray token, and a head in token mode will not start without one."""
    from grader.ray_backend import ensure_auth_token

    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    made = ensure_auth_token()
    assert made == tmp_path / ".ray" / "auth_token"
    token = made.read_text()
    assert len(token) == 64 and int(token, 16) >= 0
    assert made.stat().st_mode & 0o777 == 0o600 and made.parent.stat().st_mode & 0o077 == 0
    assert ensure_auth_token() is None and made.read_text() == token  # an existing token is kept

    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "elsewhere" / "token"))
    assert ensure_auth_token() == tmp_path / "elsewhere" / "token"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "given")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "unused"))
    assert ensure_auth_token() is None and not (tmp_path / "unused").exists()
