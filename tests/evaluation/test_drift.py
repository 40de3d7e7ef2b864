"""Drift (`ratchet.evaluation.drift`): the population stability index."""
from __future__ import annotations

from ratchet.evaluation.drift import PSI_WARNING, psi


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.normal(size=2000)
    assert psi(base, rng.normal(size=500)) < 0.05
    assert psi(base, rng.normal(loc=1.5, size=500)) > PSI_WARNING
    assert psi([0, 1, 0, 0, 1], [1, 1, 1, 1]) > PSI_WARNING  # few values: compared as categories
    assert psi([], [1.0]) is None
