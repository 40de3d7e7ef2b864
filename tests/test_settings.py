"""Settings (`ratchet.settings`): the database URL."""
from __future__ import annotations

import pytest

from ratchet import settings
from ratchet.exceptions import ConfigurationError


def test_non_postgres_url_is_refused():
    with pytest.raises(ConfigurationError, match="must be PostgreSQL"):
        settings.normalize_url("sqlite:///ratchet.db")
