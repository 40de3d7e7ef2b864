"""The registry store (`ratchet.registry.Registry`): one champion per model, version numbers, trustworthy artifacts."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from ratchet.modeling import artifacts


def _fitted_model():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    return Ridge(alpha=0.5).fit(X, X @ np.array([1.0, -2.0, 0.5])), X


def _register(registry, name, run_id):
    model, _ = _fitted_model()
    art = artifacts.dump(model)
    return registry.register_version(
        name, run_id=run_id, trial_index=None, estimator_class="sklearn.linear_model.Ridge",
        hyperparameters={"alpha": 0.5}, artifact=art.data, artifact_sha256=art.sha256, artifact_format=art.format,
        dataset_fingerprint="f" * 64, features=["a", "b", "c"], target="y", package_versions={},
        author="test", fit_seconds=0.01, size_bytes=art.size_bytes)


def _add_model_with_versions(registry, name="m", versions=2):
    with registry.engine.begin() as conn:
        conn.execute(text("INSERT INTO models (name, task, owner, spec) VALUES (:n, 'regression', 't', '{}')"),
                     {"n": name})
    for i in range(versions):
        _register(registry, name, f"r{i + 1}")
    return registry.versions(name)


def test_two_concurrent_transactions_cannot_both_create_a_champion(registry):
    _add_model_with_versions(registry)
    with registry.engine.connect() as conn:  # the race is between raw transactions on the aliases table
        rows = conn.execute(text("SELECT model_id, id FROM model_versions ORDER BY version")).all()
    model_id, version_ids = rows[0][0], [version_id for _, version_id in rows]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def set_champion(version_id):
        conn = registry.engine.connect()
        trans = conn.begin()
        try:
            barrier.wait()
            conn.execute(text("INSERT INTO aliases (model_id, alias, version_id) VALUES (:m, 'champion', :v)"),
                         {"m": model_id, "v": version_id})
            trans.commit()
            outcomes.append("committed")
        except IntegrityError:
            trans.rollback()
            outcomes.append("refused")
        finally:
            conn.close()

    threads = [threading.Thread(target=set_champion, args=(v,)) for v in version_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["committed", "refused"]
    with registry.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM aliases WHERE alias = 'champion'")).scalar() == 1


def test_version_numbers_are_per_model_and_registration_is_idempotent(registry):
    versions = _add_model_with_versions(registry)
    assert [v.version for v in versions] == [1, 2]
    again = _register(registry, "m", "r1")
    assert again == 1
    assert len(registry.versions("m")) == 2


def test_artifact_round_trips_exactly_through_the_registry(registry):
    _add_model_with_versions(registry, versions=1)
    original, X = _fitted_model()
    loaded = registry.load_estimator("m", 1)
    assert type(loaded) is type(original)
    np.testing.assert_array_equal(loaded.coef_, original.coef_)
    np.testing.assert_array_equal(loaded.predict(X), original.predict(X))


def test_tampered_artifact_is_refused_with_a_clear_error(registry):
    _add_model_with_versions(registry, versions=1)
    with registry.engine.begin() as conn:
        conn.execute(text("UPDATE model_versions SET artifact = artifact || '\\x00'::bytea"))
    with pytest.raises(artifacts.ArtifactError, match="checksum mismatch"):
        registry.load_estimator("m", 1)


def test_unknown_model_and_version_are_named(registry):
    from ratchet.exceptions import NotFoundError, UnknownModelError

    _add_model_with_versions(registry, versions=1)
    with pytest.raises(UnknownModelError, match="unknown model 'nope'.*\\['m'\\]"):
        registry.versions("nope")
    with pytest.raises(NotFoundError, match="no version 9; its versions: \\[1\\]"):
        registry.version("m", 9)
