"""A directory served on 127.0.0.1 by http.server, misbehaving where a test says: the hostile site and network
the monitor's tests put between it and the vendor."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Intercept = Callable[
    [SimpleHTTPRequestHandler, str], bool
]  # (handler, path without "/"): True if it answered


class LoopbackSite:
    """``root`` served on 127.0.0.1; a GET that ``intercept`` answers itself is not served from ``root``."""

    def __init__(self, root: Path | None, intercept: Intercept) -> None:
        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kw: Any) -> None:
                super().__init__(*args, directory=str(root or Path("/nonexistent")), **kw)

            def do_GET(self) -> None:
                if not intercept(self, self.path.lstrip("/")):
                    super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
