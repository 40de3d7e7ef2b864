"""The one way tests make model specs: a small valid spec, changed by deep-merged overrides.

    spec_data("demand", search={"n_trials": 3})           # the mapping a model YAML holds
    write_spec(tmp_path, name="demand", owner="tests")     # writes tmp_path/demand.yaml, returns its ModelSpec
    write_spec(tmp_path, data, promotion={"min_trial_days": 0})  # a mapping from spec_data, changed for one test
    build_spec(name="m", source={"target_lags": [1]})      # a ModelSpec parsed in memory, no file written

Helper modules keep the fields their tests share as overrides (`promote_helpers.SPEC`,
`nowtest_helpers.SPEC`, ...): `write_spec(tmp_path, **SPEC)`, or `spec_data(**SPEC)` to change them.

The defaults are the smallest valid regression spec: the source `{table: <name>_source, time_column: day,
target: y}` and one `sklearn.linear_model.Ridge` without a search space; every other field is left to
Ratchet's own defaults, so a test states what it relies on. Overrides are merged into nested mappings
(`source={"features": ["x"]}` keeps table, time_column and target); lists and other values replace what
was there. Nothing passed in is modified: every call returns fresh copies.

Specs are written as YAML with `yaml.safe_dump` and read back with `ratchet.specs.load_spec`, the way
Ratchet reads the models folder. The factory makes valid specs only: tests of spec validation write their
broken YAML as text.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from ratchet.specs import ModelSpec, load_spec, parse_spec

RIDGE = "sklearn.linear_model.Ridge"


def merge(base: dict, overrides: dict) -> dict:
    """A copy of `base` with `overrides` merged in: mappings key by key, any other value replaced."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def spec_data(name: str = "demand", *, table: str | None = None, query: str | None = None,
              **overrides: Any) -> dict:
    """The mapping of a valid model YAML named `name`.

    The source reads `table` (default `<name>_source`), or `query` when one is given instead; `overrides`
    are any top-level spec fields, deep-merged into the defaults.
    """
    source: dict[str, Any] = {}
    if table is not None or query is None:
        source["table"] = table if table is not None else f"{name}_source"
    if query is not None:
        source["query"] = query
    data = {"name": name, "task": "regression", "source": {**source, "time_column": "day", "target": "y"},
            "estimators": [{"class": RIDGE}]}
    return merge(data, overrides)


def _data(data: dict | None, overrides: dict) -> dict:
    return spec_data(**overrides) if data is None else merge(data, overrides)


def write_spec(folder: Path | str, data: dict | None = None, *, filename: str | None = None,
               **overrides: Any) -> ModelSpec:
    """Write a model YAML into `folder` and return it as Ratchet loads it.

    `data` is a whole spec mapping (from `spec_data`) with `overrides` deep-merged into it; without
    `data`, `overrides` are the arguments of `spec_data` (`name`, `table`, `query` and spec fields).
    The file is `<name>.yaml` unless `filename` says otherwise; a `<stem>.golden.yaml` written beside it
    beforehand becomes the spec's golden cases file.
    """
    data = _data(data, overrides)
    path = Path(folder) / (filename or f"{data['name']}.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_spec(path)


def build_spec(data: dict | None = None, **overrides: Any) -> ModelSpec:
    """The spec parsed in memory, as if read from `<name>.yaml` (never written), for tests that need no file.

    Arguments as for `write_spec`.
    """
    data = _data(data, overrides)
    return parse_spec(Path(f"{data['name']}.yaml"), data)
