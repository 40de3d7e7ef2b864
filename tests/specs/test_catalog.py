"""The models folder (`ratchet.specs.catalog`): one spec per name, golden files beside the specs."""
from __future__ import annotations

import pytest
from spec_factory import RIDGE, write_spec

from ratchet.exceptions import SpecError
from ratchet.specs import load_specs

M = {"name": "m", "table": "s.t",
     "estimators": [{"class": RIDGE, "search_space": {"alpha": {"loguniform": [0.1, 10]}}}]}


def test_two_files_with_one_name_are_refused(tmp_path):
    write_spec(tmp_path, filename="a.yaml", **M)
    write_spec(tmp_path, filename="b.yaml", **M)
    with pytest.raises(SpecError, match="b.yaml: field 'name'.*not already used by .*a.yaml"):
        load_specs(tmp_path)


def test_golden_files_are_not_specs(tmp_path):
    write_spec(tmp_path, **M)
    (tmp_path / "m.golden.yaml").write_text("- {name: c, inputs: {}, expected: 1, tolerance: 1}")
    assert list(load_specs(tmp_path)) == ["m"]
    assert load_specs(tmp_path)["m"].golden_cases_file == tmp_path / "m.golden.yaml"
