"""A local SMTP sink for `make run`: every mail it receives is saved as an .eml file.

    python -m ratchet.mailsink --port 1025 --dir mail
"""
from __future__ import annotations

import argparse
import datetime as dt
import signal
import threading
from pathlib import Path
from typing import Any


class SaveToFolder:
    """aiosmtpd handler writing each message to `<folder>/<timestamp>-<n>.eml`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Save the message; aiosmtpd calls this for every mail it accepts."""
        self.count += 1
        stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
        path = self.folder / f"{stamp}-{self.count:04d}.eml"
        path.write_bytes(envelope.original_content or envelope.content)
        print(f"mail from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)} saved as {path}", flush=True)
        return "250 Message accepted for delivery"


def main(argv: list[str] | None = None) -> int:
    """Run the sink until SIGINT or SIGTERM."""
    from aiosmtpd.controller import Controller

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path("mail"))
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    controller = Controller(SaveToFolder(args.dir), hostname=args.host, port=args.port)
    controller.start()
    print(f"SMTP sink on {args.host}:{args.port}, saving mails in {args.dir.resolve()}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
