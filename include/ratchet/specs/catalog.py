"""The configured models: every spec file of the models folder, and one way to ask for a model by name.

Light at import (YAML and settings only): DAG files call `configured_model_names` at parse time, and the
spec dataclasses and their parser are imported by the functions that need them.
"""
from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Catalog:
    """The models folder as loaded: the valid specs by name, and each broken file's error by model name.

    A broken file stops only its own model: `get` raises that file's error for its name and hands out
    every other model. A model's name is the `name` its file declares, else the file's stem.
    """

    specs: dict[str, ModelSpec]
    broken: dict[str, SpecError]

    @property
    def names(self) -> list[str]:
        """Every configured model name, valid or broken, sorted."""
        return sorted({*self.specs, *self.broken})

    def get(self, name: str) -> ModelSpec:
        """The spec of the configured model `name`.

        Raises:
            SpecError: the model's file is broken (the message names the file and field).
            UnknownModelError: no model of that name is configured; the message lists the configured ones.
        """
        if name in self.broken:
            raise self.broken[name]
        if name not in self.specs:
            raise UnknownModelError(f"unknown model {name!r}; configured models: {self.names}")
        return self.specs[name]


def load_catalog(directory: Path | str | None = None) -> Catalog:
    """Every model file of the folder, each loaded on its own (see `Catalog`)."""
    from ratchet.specs.parsing import load_spec

    loaded: dict[str, list[tuple[Path, ModelSpec | SpecError]]] = {}
    for path in spec_files(directory):
        try:
            result: ModelSpec | SpecError = load_spec(path)
        except SpecError as exc:
            result = exc
        loaded.setdefault(declared_name(path), []).append((path, result))
    specs, broken = {}, {}
    for name, files in loaded.items():
        if len(files) > 1:
            (first, _), (second, _) = files[:2]
            broken[name] = SpecError(second, "name", f"a name not already used by {first}", name)
        elif isinstance(files[0][1], SpecError):
            broken[name] = files[0][1]
        else:
            specs[name] = files[0][1]
    return Catalog(specs, broken)


def load_specs(directory: Path | str | None = None) -> dict[str, ModelSpec]:
    """Every model spec in the folder, by name, when every file is valid.

    Raises:
        SpecError: a file is invalid, or two files use one name (the first such file's error).
    """
    catalog = load_catalog(directory)
    if catalog.broken:
        raise min(catalog.broken.values(), key=lambda error: error.path)
    return catalog.specs


def get_spec(name: str, specs: dict[str, ModelSpec] | Catalog | None = None) -> ModelSpec:
    """The spec of the configured model `name`, from `specs` (a mapping or a Catalog), else the models folder.

    A broken file elsewhere in the folder does not matter; only `name`'s own file does.

    Raises:
        SpecError: the model's own file is broken.
        UnknownModelError: no model of that name is configured; the message lists the configured ones.
    """
    if specs is None:
        specs = load_catalog()
    if isinstance(specs, Catalog):
        return specs.get(name)
    return Catalog(dict(specs), {}).get(name)


def declared_name(path: Path) -> str:
    """The model name a file declares (`name:`), or its stem when the file has no readable name."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        data = None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else path.stem


def model_names(directory: Path | str | None = None) -> list[str]:
    """Every configured model's name, broken files included, cheap enough for DAG parsing (YAML only).

    A broken file's model gets its tasks like any other, and they fail with the file's error.
    """
    return list(dict.fromkeys(declared_name(path) for path in spec_files(directory)))


def configured_model_names() -> list[str]:
    """Model names for DAG files at parse time: an empty list (not an error) without a models folder."""
    try:
        return model_names()
    except ConfigurationError:
        return []
