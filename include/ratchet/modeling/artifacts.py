"""Fitted estimators as bytes that load without running arbitrary code.

Artifacts are written with `skops.io` and read back with an explicit allow-list of
type prefixes: scikit-learn, NumPy, SciPy, Ratchet's own baselines, its decision-threshold wrapper and its students
(`modeling.distill`; both keep numbers, strings and scikit-learn estimators only, never a user's function).
Anything else in a stored artifact, or bytes whose sha256 differs from the recorded one, is refused.
`pickle` is never used on bytes that come from the database.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ratchet.exceptions import ArtifactError
from ratchet.specs.model import TRUSTED_ESTIMATOR_MODULES

ARTIFACT_FORMAT = "skops"
TRUSTED_PREFIXES = (*TRUSTED_ESTIMATOR_MODULES, "numpy.", "scipy.", "ratchet.modeling.baselines.",
                    "ratchet.modeling.threshold.", "ratchet.modeling.distill.")


@dataclass(frozen=True)
class Artifact:
    """A fitted estimator as bytes, with the checksum it is stored and verified by."""

    data: bytes
    sha256: str
    format: str = ARTIFACT_FORMAT

    @property
    def size_bytes(self) -> int:
        """The artifact's size (what `model_size_bytes` requirements bound)."""
        return len(self.data)


def sha256(data: bytes) -> str:
    """Hex sha256 of the bytes."""
    return hashlib.sha256(data).hexdigest()


def skops_io() -> ModuleType:
    """`skops.io`, imported with warnings silenced.

    On import, skops looks for each SciPy ufunc in every loaded module. In an Airflow process that search
    goes through Airflow's deprecated-import shims, whose warnings (a thousand log lines, seconds of
    logging per task) say nothing about any model.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import skops.io
    return skops.io


def dump(estimator: Any) -> Artifact:
    """The estimator as a skops artifact."""
    data = skops_io().dumps(estimator)
    return Artifact(data=data, sha256=sha256(data))


def load(data: bytes, expected_sha256: str, fmt: str = ARTIFACT_FORMAT) -> Any:
    """Verify the checksum, then load with only trusted types.

    Raises:
        ArtifactError: unknown format, altered bytes, or a type outside TRUSTED_PREFIXES.
    """
    if fmt != ARTIFACT_FORMAT:
        raise ArtifactError(f"unknown artifact format {fmt!r}; Ratchet reads {ARTIFACT_FORMAT!r}")
    actual = sha256(data)
    if actual != expected_sha256:
        raise ArtifactError(
            f"artifact checksum mismatch: stored sha256 {expected_sha256}, bytes hash to {actual}; "
            "the artifact was altered after it was registered and will not be loaded"
        )
    sio = skops_io()
    untrusted = sio.get_untrusted_types(data=data)
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ArtifactError(f"artifact contains types outside the trusted list: {sorted(refused)}")
    return sio.loads(data, trusted=untrusted)
