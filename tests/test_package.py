"""The installed package: what a wheel carries, what it declares, and what it finds without a checkout."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from grader.artifacts import find_model_dir, models_dir, shipped_models
from grader.fingerprint import package_dir
from grader.written.judge import DEFAULT_NAME, META_FILE

from .conftest import ROOT

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-")


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {k: v for k, v in project.get("optional-dependencies", {}).items() if k != "dev"}  # e.g. ray
    names = set()
    for spec in [*project["dependencies"], *(s for specs in extras.values() for s in specs)]:
        for stop in "<>=!~[; ":
            spec = spec.split(stop)[0]
        names.add(_normalise(spec))
    return names


def test_every_third_party_import_of_the_package_is_declared():
    imported: set[str] = set()
    for path in package_dir().rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    distributions = packages_distributions()
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m not in ("grader", "__future__")}
    missing = {m for m in third_party if not {_normalise(d) for d in distributions.get(m, [m])} & _declared()}
    assert not missing, f"imported but not in pyproject's dependencies: {sorted(missing)}"


def test_the_default_judge_ships_as_package_data():
    assert DEFAULT_NAME in shipped_models(META_FILE)
    found = find_model_dir(DEFAULT_NAME, META_FILE)
    assert found is not None and found.parent == models_dir().resolve()
    assert models_dir().resolve().is_relative_to(package_dir().resolve())


def test_a_retired_fine_tuned_encoder_is_a_clear_error(tmp_path):
    from grader.written.embedding import Encoder, ModelNotFound

    (tmp_path / "grader_delta.json").write_text("{}")
    with pytest.raises(ModelNotFound, match="no longer supported"):
        Encoder(tmp_path)


def test_the_wheel_carries_the_models_and_templates_but_not_the_example_course(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "out", "build", "*.egg-info")
    )
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("grader-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert f"grader/models/{DEFAULT_NAME}/{META_FILE}" in names
    assert f"grader/models/{DEFAULT_NAME}/judge.safetensors" in names
    assert "grader/cli/rubric_template.yaml" in names
    assert "grader/code/sandbox/server.py" in names
    assert not any(n.startswith(("rubrics/", "submissions/", "tests/", "training/")) for n in names)
    assert Path(wheel).stat().st_size < 30_000_000  # the judge's fp16 delta is most of it (about 22 MB)
