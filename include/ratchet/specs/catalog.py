"""The configured models: every spec file of the models folder, and one way to ask for a model by name.

Light at import (YAML and settings only): DAG files call `configured_model_names` at parse time, and the
spec dataclasses and their parser are imported by the functions that need them.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ratchet import settings
from ratchet.exceptions import ConfigurationError, SpecError, UnknownModelError

if TYPE_CHECKING:
    from ratchet.specs.model import ModelSpec


def spec_files(directory: Path | str | None = None) -> list[Path]:
    """The model YAML files of the folder (default: `RATCHET_MODELS_DIR`), golden-case files left out.

    Raises:
        ConfigurationError: the folder does not exist.
    """
    directory = Path(directory) if directory else settings.models_dir()
    if not directory.is_dir():
        raise ConfigurationError(f"models folder {directory} does not exist ({settings.MODELS_DIR_ENV})")
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml")
                  and not p.name.endswith((".golden.yaml", ".golden.yml")))


def load_specs(directory: Path | str | None = None) -> dict[str, ModelSpec]:
    """Every model spec in the folder, by name.

    Raises:
        SpecError: a file is invalid, or two files use one name.
    """
    from ratchet.specs.parsing import load_spec

    specs: dict[str, ModelSpec] = {}
    for path in spec_files(directory):
        spec = load_spec(path)
        if spec.name in specs:
            raise SpecError(path, "name", f"a name not already used by {specs[spec.name].path}", spec.name)
        specs[spec.name] = spec
    return specs


def get_spec(name: str, specs: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """The spec of the configured model `name` (from `specs`, else from the models folder).

    Raises:
        UnknownModelError: no model of that name is configured; the message lists the configured ones.
    """
    specs = load_specs() if specs is None else specs
    if name not in specs:
        raise UnknownModelError(f"unknown model {name!r}; configured models: {sorted(specs)}")
    return specs[name]


def model_names(directory: Path | str | None = None) -> list[str]:
    """Names only, cheap enough for DAG parsing (no estimator imports); unreadable files are left out."""
    names = []
    for path in spec_files(directory):
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            names.append(data["name"])
    return names


def configured_model_names() -> list[str]:
    """Model names for DAG files at parse time: an empty list (not an error) without a models folder."""
    try:
        return model_names()
    except ConfigurationError:
        return []
