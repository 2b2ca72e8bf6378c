"""A directory served over HTTP by Python's http.server on 127.0.0.1: the stand-in for nginx where nginx is not
installed (the demo says which one served), and the tests' server. ``root`` may be switched while serving, so a
test can show one endpoint a tree nobody else sees (a fork, a targeted update) at the same URL."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from types import TracebackType


class StaticSite:
    """``root`` served at :attr:`url` until :meth:`stop`; :attr:`requested` lists the paths asked for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requested: list[str] = []
        site = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kw: object) -> None:
                super().__init__(*args, directory=str(site.root), **kw)  # type: ignore[arg-type]

            def log_message(self, format: str, *args: object) -> None:
                site.requested.append(self.path)

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 64  # the agent fetches evidence concurrently; socketserver's default is 5

        self.server = Server(("127.0.0.1", 0), functools.partial(Handler))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self._stopped = False

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def __enter__(self) -> StaticSite:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
