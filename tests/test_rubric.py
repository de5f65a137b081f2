"""Rubric loading: the shipped rubrics are valid, and every malformed rubric names file, field and reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from grader.rubric import RubricError, load_rubric_dir, rubric_json_schema

from .conftest import RUBRICS

MINIMAL = {
    "id": "q1",
    "title": "Test",
    "parts": [
        {
            "id": "a",
            "prompt": "Why?",
            "max_points": 2,
            "reference_answer": "Because.",
            "key_points": [
                {"label": "one", "text": "First claim.", "points": 1},
                {"label": "two", "text": "Second claim.", "points": 1},
            ],
        }
    ],
}


def _write(tmp_path: Path, data: object, name: str = "q1.yaml") -> Path:
    (tmp_path / name).write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return tmp_path


def _problems(directory: Path) -> list[str]:
    with pytest.raises(RubricError) as info:
        load_rubric_dir(directory)
    return info.value.problems


def test_shipped_rubrics_cover_the_question_bank(rubrics):
    ids = rubrics.part_ids()
    written = ["q1.a", "q1.b", "q2.a", "q2.b", "q3.a", "q4.a", "q5.a", "q6.a", "q6.b", "q7.a", "q7.b", "q7.c",
               "q7.d", "q8.a", "q9.a", "q9.b", "q9.c", "q10.a", "q10.b", "q10.c"]
    for part_id in written:
        assert part_id in ids
        assert rubrics.part(part_id)[1].kind == "written"
    assert rubrics.part("q5.b")[1].kind == "code"
    assert [r.id for r in rubrics.rubrics][:3] == ["q1", "q2", "q3"]  # natural order, not q1, q10, q2


def test_minimal_rubric_loads_and_defaults_ids(tmp_path):
    rs = load_rubric_dir(_write(tmp_path, MINIMAL))
    part = rs.rubrics[0].parts[0]
    assert [kp.id for kp in part.key_points] == ["kp1", "kp2"]
    assert rs.max_points == 2
    assert len(rs.sha256) == 64


def test_nonpositive_points_names_file_field_and_reason(tmp_path):
    data = json.loads(json.dumps(MINIMAL))
    data["parts"][0]["key_points"][1]["points"] = 0
    problems = _problems(_write(tmp_path, data, "q3.yaml"))
    assert any(p.startswith(f"{tmp_path / 'q3.yaml'}: parts[0].key_points[1].points: ") and "greater than 0" in p
               for p in problems), problems


def test_totals_must_match_max_points(tmp_path):
    data = json.loads(json.dumps(MINIMAL))
    data["parts"][0]["max_points"] = 5
    (problem,) = _problems(_write(tmp_path, data))
    assert "parts[0]" in problem and "sum to 2 but max_points is 5" in problem


def test_unknown_field_is_an_error(tmp_path):
    data = json.loads(json.dumps(MINIMAL))
    data["parts"][0]["key_points"][0]["weight"] = 1
    (problem,) = _problems(_write(tmp_path, data))
    assert "parts[0].key_points[0].weight: unknown field" in problem


def test_duplicate_part_ids(tmp_path):
    data = json.loads(json.dumps(MINIMAL))
    data["parts"].append(data["parts"][0])
    (problem,) = _problems(_write(tmp_path, data))
    assert problem.endswith("q1.yaml: parts: duplicate part ids: ['a']")


def test_duplicate_question_ids_across_files(tmp_path):
    _write(tmp_path, MINIMAL)
    _write(tmp_path, MINIMAL, "q1_copy.yaml")
    (problem,) = _problems(tmp_path)
    assert problem.endswith("q1_copy.yaml: id: duplicate question id 'q1' (also in q1.yaml)")


def test_duplicate_key_point_ids(tmp_path):
    data = json.loads(json.dumps(MINIMAL))
    for kp in data["parts"][0]["key_points"]:
        kp["id"] = "same"
    (problem,) = _problems(_write(tmp_path, data))
    assert "duplicate key point / misconception ids: ['same']" in problem


def test_missing_field_and_bad_yaml_and_non_mapping(tmp_path):
    data = json.loads(json.dumps(MINIMAL))
    del data["parts"][0]["prompt"]
    _write(tmp_path, data, "q1.yaml")
    _write(tmp_path, "id: q2\nparts: [\n", "q2.yaml")
    _write(tmp_path, "- just\n- a list\n", "q3.yaml")
    problems = _problems(tmp_path)
    assert any("q1.yaml: parts[0].prompt: required field is missing" in p for p in problems)
    assert any("q2.yaml: invalid YAML: line" in p for p in problems)
    assert any("q3.yaml: a rubric must be a YAML mapping" in p for p in problems)


def test_exemplar_above_max(tmp_path):
    data = json.loads(json.dumps(MINIMAL))
    data["parts"][0]["exemplars"] = [{"answer": "x", "points": 3}]
    (problem,) = _problems(_write(tmp_path, data))
    assert problem.endswith("parts[0]: exemplars[0].points (3) exceeds max_points (2)")


def test_code_part_without_reference_file(tmp_path):
    data = json.loads(json.dumps(MINIMAL))
    data["parts"].append({
        "id": "b", "kind": "code", "prompt": "Implement f.", "max_points": 1, "reference_answer": "f",
        "code": {"entry_point": "f", "reference": "reference/missing.py",
                 "inputs": [{"name": "x", "shape": ["N", 3]}],
                 "cases": [{"name": "one", "seed": 1, "points": 1, "dims": {"N": 2}}]},
    })
    (problem,) = _problems(_write(tmp_path, data))
    assert problem.endswith("q1.yaml: parts[1].code.reference: file not found: reference/missing.py")


def test_code_case_must_bind_symbolic_dims(tmp_path):
    data = json.loads(json.dumps(MINIMAL))
    data["parts"] = [{
        "id": "b", "kind": "code", "prompt": "Implement f.", "max_points": 1, "reference_answer": "f",
        "code": {"entry_point": "f", "reference": "ref.py", "inputs": [{"name": "x", "shape": ["N", 3]}],
                 "cases": [{"name": "one", "seed": 1, "points": 1}]},
    }]
    (problem,) = _problems(_write(tmp_path, data))
    assert "parts[0].code: case 'one' does not bind dims ['N']" in problem


def test_empty_directory_and_missing_directory(tmp_path):
    assert "no rubric files" in _problems(tmp_path)[0]
    assert "not a directory" in _problems(tmp_path / "nope")[0]


def test_schema_describes_rubric_fields():
    schema = rubric_json_schema()
    assert schema["title"].startswith("grader rubric")
    assert "parts" in schema["required"]
    part = schema["$defs"]["Part"]
    assert {"id", "prompt", "max_points", "reference_answer", "key_points", "misconceptions", "exemplars"} <= set(
        part["properties"]
    )
    assert part["additionalProperties"] is False


def test_shipped_rubrics_validate_against_the_json_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = rubric_json_schema()
    for path in sorted(RUBRICS.glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_infinite_points_and_oversized_penalty_are_errors(tmp_path):
    data = json.loads(json.dumps(MINIMAL))
    data["parts"][0]["max_points"] = float("inf")
    (problem,) = _problems(_write(tmp_path, data))
    assert "parts[0].max_points: input should be a finite number" in problem
    data = json.loads(json.dumps(MINIMAL))
    data["parts"][0]["misconceptions"] = [{"label": "x", "text": "Wrong.", "penalty": 3}]
    (problem,) = _problems(_write(tmp_path, data))
    assert "misconceptions[0].penalty (3) exceeds max_points (2)" in problem


def test_yaml_boolean_id_gets_a_hint(tmp_path):
    text = yaml.safe_dump(MINIMAL).replace("id: a", "id: yes")
    (problem,) = _problems(_write(tmp_path, text))
    assert "parts[0].id: YAML read this as true/false" in problem and "quote it" in problem
