"""Which version answers a feature id: the champion, or a candidate in trial for a hashed share of ids.

`serving.split: {candidate: trial | <version>, fraction}` sends the ids whose hash (sha256 of the model name and
the id) falls below `fraction` to the candidate: the same id always gets the same arm, on every replica and
after every restart, and a larger fraction only adds ids to the candidate's arm. The candidate is 'trial' (the
newest version in trial, i.e. newer than the champion) or a version number that exists and is in trial;
otherwise every id goes to the champion and the model's description says why.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ratchet.exceptions import NoChampionError, RatchetError
from ratchet.registry.entities import in_trial
from ratchet.specs.model import SPLIT_TRIAL

if TYPE_CHECKING:
    from ratchet.registry import Registry
    from ratchet.registry.entities import Version
    from ratchet.specs.model import ModelSpec

log = logging.getLogger(__name__)
CHAMPION_ARM, CANDIDATE_ARM = "champion", "candidate"


def candidate_share(model: str, feature_id: dt.datetime, series: str | None = None) -> float:
    """Where an id falls in [0, 1): the first 8 bytes of sha256('<model>|<id in ISO 8601>'); in a panel, of
    sha256('<model>|<series>'), so a series stays in one arm every day."""
    digest = hashlib.sha256(f"{model}|{series if series is not None else feature_id.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


@dataclass(frozen=True)
class Arm:
    """A version that answers, its fitted estimator, which arm of the split it is, and the spec its inputs are built
    with (`ModelSpec.for_version`: the version's own feature contract, never today's YAML)."""

    name: str
    version: Version
    estimator: Any
    spec: ModelSpec

    @classmethod
    def of(cls, name: str, version: Version, estimators: Estimators, spec: ModelSpec) -> Arm:
        """The arm `name` answered by `version`, its estimator loaded once, its inputs under its contract."""
        return cls(name, version, estimators.get(version), spec.for_version(version.version, version.contract))


@dataclass(frozen=True)
class SplitState:
    """A model's `serving.split` as resolved against the registry: the candidate it routes to, or why none."""

    candidate: str | int
    fraction: float
    version: int | None
    reason: str | None  # why the split is inactive (every id goes to the champion)


@dataclass(frozen=True, kw_only=True)
class ModelState:
    """What the service knows of a model between two changes: its spec, champion, trial versions and split.

    `refusal` is the error a prediction request gets when the model cannot be served (a broken spec, no champion
    yet, a refused artifact); `registered` is whether the registry knows the model (so requests can be logged).
    """

    name: str
    spec: ModelSpec | None = None
    champion: Arm | None = None
    candidate: Arm | None = None
    trial: tuple[int, ...] = ()  # versions in trial, newest first
    split: SplitState | None = None
    registered: bool = False
    refusal: RatchetError | None = None

    def arm_for(self, feature_id: dt.datetime, series: str | None = None) -> Arm:
        """The arm answering this id: the candidate for the split's share of ids (of series, in a panel), else the
        champion."""
        if self.candidate is not None and candidate_share(self.name, feature_id, series) < self.split.fraction:
            return self.candidate
        return self.champion


class Estimators:
    """Fitted estimators by (model, version, sha256), loaded once through the registry's safe loader."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self._loaded: dict[tuple[str, int, str], Any] = {}
        self._lock = threading.Lock()

    def get(self, version: Version) -> Any:
        """The version's estimator (checksum-verified, trusted types only), loaded on first use."""
        key = (version.model, version.version, version.artifact_sha256)
        estimator = self._loaded.get(key)
        if estimator is None:
            estimator = self.registry.load_estimator(version.model, version.version)
            with self._lock:
                self._loaded[key] = estimator
        return estimator

    def keep_only(self, model: str, versions: list[Version]) -> None:
        """Forget the model's estimators other than those of `versions`."""
        wanted = {(v.model, v.version, v.artifact_sha256) for v in versions}
        with self._lock:
            for key in [k for k in self._loaded if k[0] == model and k not in wanted]:
                del self._loaded[key]


def resolve(registry: Registry, estimators: Estimators, spec: ModelSpec) -> ModelState:
    """The model's state from the registry: champion and split candidate loaded, or why it cannot be served.

    Raises:
        UnknownModelError: the registry does not know the model (no version was ever registered).
    """
    champion = registry.champion(spec.name)
    versions = registry.versions(spec.name)
    number = champion.version if champion else None
    trial = tuple(v.version for v in reversed(versions) if in_trial(v.version, number))
    if champion is None:
        estimators.keep_only(spec.name, [])
        return ModelState(name=spec.name, spec=spec, trial=trial, registered=True, refusal=NoChampionError(
            f"model {spec.name!r} has no champion yet; promote a version with the ratchet_promote DAG"))
    split, candidate = _split(spec, champion, versions, trial)
    wanted = [champion] + ([candidate] if candidate else [])
    estimators.keep_only(spec.name, wanted)
    answering = Arm.of(CHAMPION_ARM, champion, estimators, spec)
    trying = None
    if candidate is not None:
        try:
            trying = Arm.of(CANDIDATE_ARM, candidate, estimators, spec)
        except RatchetError as exc:  # a trial never costs a client an answer: the champion takes every id
            log.error("model %r: the split's candidate v%d cannot be loaded: %s", spec.name, candidate.version, exc)
            split = replace(split, version=None, reason=f"v{candidate.version} cannot be loaded ({exc}); every id "
                                                        "goes to the champion")
    return ModelState(name=spec.name, spec=spec, champion=answering, candidate=trying, trial=trial, split=split,
                      registered=True)


def _split(spec: ModelSpec, champion: Version, versions: list[Version],
           trial: tuple[int, ...]) -> tuple[SplitState | None, Version | None]:
    wanted = spec.serving.split
    if wanted is None:
        return None, None
    by_number = {v.version: v for v in versions}
    reason, chosen = None, None
    if wanted.candidate == SPLIT_TRIAL:
        if trial:
            chosen = by_number[trial[0]]
        else:
            reason = f"no version is in trial (none is newer than the champion v{champion.version})"
    elif wanted.candidate not in by_number:
        reason = f"v{wanted.candidate} does not exist; versions: {sorted(by_number)}"
    elif wanted.candidate not in trial:
        reason = (f"v{wanted.candidate} is not in trial: it is the champion" if wanted.candidate == champion.version
                  else f"v{wanted.candidate} is not in trial: the champion v{champion.version} is newer")
    else:
        chosen = by_number[wanted.candidate]
    if reason:
        reason += "; every id goes to the champion"
    return SplitState(wanted.candidate, wanted.fraction, chosen.version if chosen else None, reason), chosen
