"""Artifacts (`ratchet.modeling.artifacts`): only trusted types load."""
from __future__ import annotations

import pytest

from ratchet.modeling import artifacts


def test_artifact_with_untrusted_types_is_refused():
    from sklearn.preprocessing import FunctionTransformer

    risky = artifacts.dump(FunctionTransformer(func=print))
    with pytest.raises(artifacts.ArtifactError, match="trusted"):
        artifacts.load(risky.data, risky.sha256)
