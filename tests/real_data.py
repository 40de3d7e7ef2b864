"""Where the real tables are: ../shared/data/real/ beside the repository, as the machine and CI lay it out.

RATCHET_REAL_DATA names the folder when it lies elsewhere; a clone made elsewhere (git clone into /tmp, say)
finds it beside the repository it was cloned from. Without it the tests fail and say so: the real tables are
what proves the product, so their absence is never a silent skip.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path:
    """The folder of the real tables (it holds SOURCES.md)."""
    candidates = [Path(os.environ["RATCHET_REAL_DATA"])] if os.environ.get("RATCHET_REAL_DATA") else []
    candidates.append(REPO.parent / "shared" / "data" / "real")
    origin = subprocess.run(["git", "-C", str(REPO), "config", "--get", "remote.origin.url"], capture_output=True,
                            text=True).stdout.strip()
    if origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared" / "data" / "real")
    for folder in candidates:
        if (folder / "SOURCES.md").is_file():
            return folder
    raise FileNotFoundError(f"the real tables are not in any of {[str(c) for c in candidates]}: "
                            "set RATCHET_REAL_DATA to the folder of ../shared/data/real")
