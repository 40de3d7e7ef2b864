"""Model specs: one YAML file per model, parsed into frozen dataclasses. Light: DAG files import it at parse time."""
from ratchet.specs.catalog import configured_model_names, get_spec, load_specs, spec_files
from ratchet.specs.model import ModelSpec
from ratchet.specs.parsing import load_spec, parse_spec

__all__ = ["ModelSpec", "configured_model_names", "get_spec", "load_spec", "load_specs", "parse_spec", "spec_files"]
