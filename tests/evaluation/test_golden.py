"""Golden regression cases (`ratchet.evaluation.golden`): the file next to the YAML and run_golden_cases."""
from __future__ import annotations

import pytest
from promote_helpers import GOLDEN, SPEC, register_fitted, snapshot, write_golden_spec
from spec_factory import write_spec

from ratchet.evaluation.golden import load_golden_file, read_golden_file, run_golden_cases
from ratchet.exceptions import GoldenFileError


@pytest.fixture
def model(tmp_path, registry):
    spec = write_golden_spec(tmp_path, GOLDEN)
    registry.sync_model(spec)
    version = register_fitted(registry, spec.name, "r1")
    return spec, version


BAD_FILES = [
    ("not yaml", "- name: [unclosed", r"\(document\): expected valid YAML"),
    ("not a list", "name: x\n", r"\(document\): expected a list of cases"),
    ("case not a mapping", "- just a string\n", r"case \[0\]: expected a mapping"),
    ("missing tolerance", [{"name": "a", "inputs": {"x1": 1, "x2": 2}, "expected": 1}],
     r"case \[0\] field 'tolerance': expected a value; the field is required"),
    ("unknown field", [{**GOLDEN[0], "weight": 2}], r"case \[0\] field 'weight': expected only the fields"),
    ("empty name", [{**GOLDEN[0], "name": " "}], r"case \[0\] field 'name': expected a non-empty string"),
    ("duplicate name", [GOLDEN[0], {**GOLDEN[1], "name": "typical"}],
     r"case \[1\] 'typical' field 'name': expected a name not used by an earlier case"),
    ("missing input", [GOLDEN[0], {**GOLDEN[1], "inputs": {"x1": 1.0}}],
     r"case \[1\] 'negative' field 'inputs': expected a value for every input \['x1', 'x2'\]; missing \['x2'\]"),
    ("unknown input", [{**GOLDEN[0], "inputs": {"x1": 1.0, "x2": 0.0, "x3": 1.0}}],
     r"case \[0\] 'typical' field 'inputs.x3': expected only the model's inputs"),
    ("text input", [{**GOLDEN[0], "inputs": {"x1": "high", "x2": 0.0}}],
     r"case \[0\] 'typical' field 'inputs.x1': expected a finite number, got 'high'"),
    ("text expected", [{**GOLDEN[0], "expected": "3"}], r"field 'expected': expected a finite number"),
    ("negative tolerance", [GOLDEN[0], {**GOLDEN[1], "tolerance": -1}],
     r"case \[1\] 'negative' field 'tolerance': expected a number >= 0, got -1"),
]


@pytest.mark.parametrize("content, pattern", [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_a_bad_golden_file_names_file_case_and_field_and_changes_nothing(model, registry, tmp_path, content,
                                                                         pattern):
    spec, version = model
    load_golden_file(registry, spec)
    before = snapshot(registry)
    bad = (write_golden_spec(tmp_path, content, None) if not isinstance(content, str)
           else write_golden_spec(tmp_path, raw=content))
    with pytest.raises(GoldenFileError, match=pattern) as error:
        run_golden_cases(registry, bad, version)
    assert str(tmp_path / "demand.golden.yaml") in str(error.value)
    assert snapshot(registry) == before


def test_run_golden_cases_pass_and_fail_with_the_stored_estimator(model, registry, tmp_path):
    spec, version = model
    result = run_golden_cases(registry, spec, version)
    assert result.passed and result.n_cases == 2 and result.failures == []

    wrong = write_golden_spec(tmp_path, [GOLDEN[0], {**GOLDEN[1], "expected": 5.0}])
    result = run_golden_cases(registry, wrong, version)
    assert not result.passed and result.n_cases == 2
    (failure,) = result.failures
    assert failure["name"] == "negative" and failure["expected"] == 5.0 and failure["tolerance"] == 0.5
    assert failure["predicted"] == pytest.approx(-2.0, abs=0.3) and failure["source"] == "file"
    assert "negative: predicted" in result.describe()


def test_the_file_is_the_truth_for_file_cases_and_harvested_cases_stay(model, registry, tmp_path):
    spec, version = model
    registry.add_golden_cases(spec.name, [{"case_key": "h" * 64, "source": "harvested", "name": "miss",
                                           "inputs": {"x1": 1.0, "x2": 1.0}, "expected": 1.0, "tolerance": 0.5}])
    load_golden_file(registry, spec)
    assert load_golden_file(registry, spec) == {"added": 0, "removed": 0, "kept": 2}  # loading twice: no duplicates
    edited = write_golden_spec(tmp_path, [{**GOLDEN[0], "tolerance": 0.25}])
    assert load_golden_file(registry, edited) == {"added": 0, "removed": 1, "kept": 1}
    cases = {c.name: c for c in registry.golden_cases(spec.name)}
    assert set(cases) == {"typical", "miss"} and cases["typical"].tolerance == 0.25
    assert run_golden_cases(registry, edited, version).n_cases == 2


def test_a_case_lacking_an_input_the_version_needs_fails_clearly(model, registry):
    spec, version = model
    registry.add_golden_cases(spec.name, [{"case_key": "k" * 64, "source": "harvested", "name": "old inputs",
                                           "inputs": {"x1": 1.0}, "expected": 1.0, "tolerance": 0.5}])
    result = run_golden_cases(registry, spec, version)
    (failure,) = result.failures
    assert failure["error"] == f"inputs lack ['x2'] that v{version} needs" and failure["predicted"] is None


def test_no_file_and_no_cases_pass_with_zero_cases(tmp_path, registry):
    spec = write_spec(tmp_path, **SPEC)
    registry.sync_model(spec)
    version = register_fitted(registry, spec.name, "r1")
    assert read_golden_file(spec) == []
    result = run_golden_cases(registry, spec, version)
    assert result.passed and result.n_cases == 0
