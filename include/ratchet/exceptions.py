"""Every error Ratchet raises on purpose, in one hierarchy.

`RatchetError` is the root. A `UserError` is something a person must fix (a spec, a golden file,
the data, a promotion request, an unknown model or version, an artifact that is refused): Airflow
must not retry it, because the same input fails the same way, so the DAG tasks turn it into
`AirflowFailException` and the message is the last line of the task log. Every other
`RatchetError` (an SMTP server that is down, say) is worth retrying.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


class RatchetError(Exception):
    """Root of Ratchet's errors."""


class UserError(RatchetError):
    """A person must change something before this can work; retrying the same input cannot help."""


class ConfigurationError(UserError):
    """Ratchet cannot find something it needs to run: a database, a models folder, a connection."""


class FileError(UserError):
    """A file the user keeps is wrong: the message says which file, where in it, and what is expected."""

    def __init__(self, path: Path | str, where: str, expected: str, got: Any = ...):
        self.path, self.where, self.expected = str(path), where, expected
        message = f"{path}: {where}: expected {expected}"
        if got is not ...:
            message += f", got {got!r}"
        super().__init__(message)


class SpecError(FileError):
    """A model spec is wrong: the message names the file, the field and what is expected."""

    def __init__(self, path: Path | str, field_name: str, expected: str, got: Any = ...):
        self.field = field_name
        super().__init__(path, f"field '{field_name}'", expected, got)


class GoldenFileError(FileError):
    """A golden-case file is wrong: the message names the file, the case and the field."""


class NotFoundError(UserError):
    """Something asked for does not exist: the message says what there is instead."""


class UnknownModelError(NotFoundError):
    """A model name that is not configured, or not yet in the registry: the message lists the known ones."""


class NoChampionError(NotFoundError):
    """A configured model has nothing to serve yet: no version registered, or none promoted to champion."""


class DataError(UserError):
    """A model's data cannot be used: the message names the model, the column and the problem."""


class SearchFailed(UserError):
    """No trial of a search can become a version; the message summarises each distinct failure."""


class ArtifactError(UserError):
    """A stored artifact is refused: unknown format, altered bytes or untrusted types."""


class PredictError(UserError):
    """Input rows cannot be predicted (no champion, missing columns, no lag history)."""


class PromotionInputError(UserError):
    """A promotion was asked for something that does not exist or makes no sense; nothing changed."""


class RebaselineInputError(UserError):
    """A re-baseline was asked with a bad input (the message names it); nothing changed."""


class ReviewLabelError(UserError):
    """A label given to a queued row is refused (a class the model does not know, a non-number for regression, a
    row already labelled): the message says what is expected; nothing was stored."""


class PromotionRejected(UserError):
    """At least one gate failed: the decision is recorded as 'rejected', champion and requirements unchanged.

    `outcome` is the recorded `lifecycle.promotion.PromotionOutcome`; the message lists each failed gate.
    """

    def __init__(self, outcome: Any):
        self.outcome = outcome
        failed = "; ".join(f"gate {g.number} {g.name} failed: {g.summary}" for g in outcome.gates if not g.passed)
        super().__init__(f"promotion of {outcome.model} v{outcome.version} rejected ({outcome.kind}): {failed}")


class ProposalOutdated(UserError):
    """A proposed version no longer passes every gate when a person is to be asked: there is nothing to approve."""


class ConcurrentPromotionError(UserError):
    """Another promotion of the same model committed first; nothing was changed.

    A user error because the gates were evaluated against a champion that is gone: a person decides
    again, against the new champion, instead of Airflow replaying the old decision.
    """


class ModelsFailed(UserError):
    """Some models' tasks of a run failed for good: the run must not look green (their own logs say why)."""


class UnavailableError(RatchetError):
    """Something a request needs is unavailable for now (the REST service answers 503); retrying later may work."""


class DatabaseUnavailableError(UnavailableError):
    """A database (Ratchet's own, or a model's source) cannot be reached: the message says why, never where."""


class NotServableError(UnavailableError):
    """A configured model cannot be served now: its spec is broken, or its champion's artifact is refused."""


class AlertDeliveryError(RatchetError):
    """Some alerts could not be sent for a reason that may pass; they stay queued and are retried later."""


class AlertUndeliverable(UserError):
    """Alerts refused for good (a 5xx reply) or without a recipient: they stay queued until a person fixes it."""
