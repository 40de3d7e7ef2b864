"""Golden regression cases: the file next to the YAML, run_golden_cases, and the ratchet_regression DAG."""
from __future__ import annotations

import datetime as dt
import textwrap

import pytest
import yaml
from dag_helpers import DAGS
from promote_helpers import make_spec, register_fitted, snapshot, spec_dict

from ratchet.evaluation.golden import load_golden_file, read_golden_file, run_golden_cases
from ratchet.exceptions import GoldenFileError

GOOD = [
    {"name": "typical", "inputs": {"x1": 1.0, "x2": 0.0}, "expected": 3.0, "tolerance": 0.5},
    {"name": "negative", "inputs": {"x1": 0.0, "x2": 1.0}, "expected": -2.0, "tolerance": 0.5},
]


def _spec(tmp_path, cases=None, raw: str | None = None):
    if raw is not None:
        (tmp_path / "demand.golden.yaml").write_text(raw)
    elif cases is not None:
        (tmp_path / "demand.golden.yaml").write_text(yaml.safe_dump(cases, sort_keys=False))
    return make_spec(tmp_path, spec_dict())


@pytest.fixture
def model(tmp_path, registry):
    spec = _spec(tmp_path, GOOD)
    registry.sync_model(spec)
    version = register_fitted(registry, spec.name, "r1")
    return spec, version


BAD_FILES = [
    ("not yaml", "- name: [unclosed", r"\(document\): expected valid YAML"),
    ("not a list", "name: x\n", r"\(document\): expected a list of cases"),
    ("case not a mapping", "- just a string\n", r"case \[0\]: expected a mapping"),
    ("missing tolerance", [{"name": "a", "inputs": {"x1": 1, "x2": 2}, "expected": 1}],
     r"case \[0\] field 'tolerance': expected a value; the field is required"),
    ("unknown field", [{**GOOD[0], "weight": 2}], r"case \[0\] field 'weight': expected only the fields"),
    ("empty name", [{**GOOD[0], "name": " "}], r"case \[0\] field 'name': expected a non-empty string"),
    ("duplicate name", [GOOD[0], {**GOOD[1], "name": "typical"}],
     r"case \[1\] 'typical' field 'name': expected a name not used by an earlier case"),
    ("missing input", [GOOD[0], {**GOOD[1], "inputs": {"x1": 1.0}}],
     r"case \[1\] 'negative' field 'inputs': expected a value for every input \['x1', 'x2'\]; missing \['x2'\]"),
    ("unknown input", [{**GOOD[0], "inputs": {"x1": 1.0, "x2": 0.0, "x3": 1.0}}],
     r"case \[0\] 'typical' field 'inputs.x3': expected only the model's inputs"),
    ("text input", [{**GOOD[0], "inputs": {"x1": "high", "x2": 0.0}}],
     r"case \[0\] 'typical' field 'inputs.x1': expected a finite number, got 'high'"),
    ("text expected", [{**GOOD[0], "expected": "3"}], r"field 'expected': expected a finite number"),
    ("negative tolerance", [GOOD[0], {**GOOD[1], "tolerance": -1}],
     r"case \[1\] 'negative' field 'tolerance': expected a number >= 0, got -1"),
]


@pytest.mark.parametrize("content, pattern", [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_a_bad_golden_file_names_file_case_and_field_and_changes_nothing(model, registry, tmp_path, content,
                                                                         pattern):
    spec, version = model
    load_golden_file(registry, spec)
    before = snapshot(registry)
    bad = _spec(tmp_path, content, None) if not isinstance(content, str) else _spec(tmp_path, raw=content)
    with pytest.raises(GoldenFileError, match=pattern) as error:
        run_golden_cases(registry, bad, version)
    assert str(tmp_path / "demand.golden.yaml") in str(error.value)
    assert snapshot(registry) == before


def test_run_golden_cases_pass_and_fail_with_the_stored_estimator(model, registry, tmp_path):
    spec, version = model
    result = run_golden_cases(registry, spec, version)
    assert result.passed and result.n_cases == 2 and result.failures == []

    wrong = _spec(tmp_path, [GOOD[0], {**GOOD[1], "expected": 5.0}])
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
    edited = _spec(tmp_path, [{**GOOD[0], "tolerance": 0.25}])
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
    spec = make_spec(tmp_path, spec_dict())
    registry.sync_model(spec)
    version = register_fitted(registry, spec.name, "r1")
    assert read_golden_file(spec) == []
    result = run_golden_cases(registry, spec, version)
    assert result.passed and result.n_cases == 0


# -- the nightly DAG ------------------------------------------------------------------------
LOGICAL_DATE = dt.datetime(2025, 8, 2, 4, 0, tzinfo=dt.UTC)


def _regression_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "ratchet_regression.py"))
    assert not bag.import_errors
    return bag.get_dag("ratchet_regression")


def test_ratchet_regression_dag_alerts_once_when_the_champion_breaks_a_case(airflow_db, tmp_path, monkeypatch,
                                                                            registry, smtp_server):
    from sqlalchemy import text

    spec = _spec(tmp_path, [GOOD[0], {**GOOD[1], "expected": 5.0}])
    registry.sync_model(spec)
    version = register_fitted(registry, spec.name, "r1")
    registry.record_promotion(spec.name, version, kind="initial", outcome="promoted", triggered_by="tests",
                              reason="first", gates=[], run_id="p1", expected_previous_version=None)
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))

    dag = _regression_dag()
    run = dag.test(logical_date=LOGICAL_DATE)
    assert run.state == "success"
    (row,) = registry.evaluations(spec.name, "regression")
    assert (row.contender, row.partition, row.metric, row.value, row.n_rows, row.passed) == (
        f"v{version}", "2025-08-02", "golden_pass_rate", 0.5, 2, False)
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0]["message"]
    assert message["Subject"] == ("[Ratchet] demand regression tests failed: 1 of 2 golden cases "
                                  f"(champion v{version})")
    body = message.get_body(("html",)).get_content()
    assert "negative" in body and "5" in body and "/dags/ratchet_regression/runs/" in body

    assert dag.test(logical_date=LOGICAL_DATE).state == "success"  # re-run of the date
    assert len(smtp_server.messages) == 1 and len(registry.evaluations(spec.name, "regression")) == 1
    with registry.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alerts")).scalar() == 1


def test_ratchet_regression_dag_fails_the_model_task_on_a_bad_file(airflow_db, tmp_path, monkeypatch, registry,
                                                                   smtp_server):
    spec = _spec(tmp_path, GOOD)
    registry.sync_model(spec)
    version = register_fitted(registry, spec.name, "r1")
    registry.record_promotion(spec.name, version, kind="initial", outcome="promoted", triggered_by="tests",
                              reason="first", gates=[], run_id="p1", expected_previous_version=None)
    load_golden_file(registry, spec)
    (tmp_path / "demand.golden.yaml").write_text(textwrap.dedent("""
        - name: broken
          inputs: {x1: 1.0}
          expected: 1.0
          tolerance: 0.1
    """))
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    before = snapshot(registry)
    dag = _regression_dag()
    for task in dag.tasks:
        task.retries = 0
    assert dag.test(logical_date=LOGICAL_DATE).state == "failed"
    after = snapshot(registry)
    assert after["golden_cases"] == before["golden_cases"] and after["evaluations"] == before["evaluations"]
    assert smtp_server.messages == []
