"""Model specs: one YAML file per model, parsed into frozen dataclasses.

DAG files import `specs.catalog` at parse time for the model names alone, so nothing here is imported
before it is asked for: the public names below load their module on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ModelSpec": "ratchet.specs.model",
    "load_spec": "ratchet.specs.parsing", "parse_spec": "ratchet.specs.parsing",
    "configured_model_names": "ratchet.specs.catalog", "get_spec": "ratchet.specs.catalog",
    "load_specs": "ratchet.specs.catalog", "spec_files": "ratchet.specs.catalog",
    "Catalog": "ratchet.specs.catalog", "load_catalog": "ratchet.specs.catalog",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ratchet.specs' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
