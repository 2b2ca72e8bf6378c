"""Debian's nginx serving a directory on 127.0.0.1, as a customer's web server or a CDN serves ``public/``: the
demo, the tests and ``benchmarks.update`` run it. Everything it writes (pid, error and access logs, temp paths)
lives in a prefix directory, it runs in the foreground (``daemon off``) and the context manager stops it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from overt.errors import ConfigError

TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_binary() -> str | None:
    """Debian installs nginx in /usr/sbin, which is not on every user's PATH."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    return shutil.which("nginx", path=path)


@dataclass(frozen=True)
class Nginx:
    """A running nginx: its base URL, its prefix and the paths it was asked for (from its access log)."""

    url: str
    prefix: Path

    def requested(self) -> list[str]:
        log = self.prefix / "access.log"
        return log.read_text().splitlines() if log.exists() else []


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(root: Path, prefix: Path, port: int) -> str:
    """nginx.conf serving ``root`` read-only on 127.0.0.1:``port``, all state under ``prefix``."""
    temp = "\n".join(f"    {name}_temp_path {prefix / name};" for name in TEMP_PATHS)
    # Workers that run as nobody cannot read a 0700 pytest dir; as root they may run as root.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    types {{ application/json json; text/plain txt; }}
    default_type application/octet-stream;
    log_format paths '$request_uri';
    access_log {prefix / "access.log"} paths;
{temp}
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ try_files $uri =404; }}
    }}
}}
"""


def _wait_until_answering(process: subprocess.Popen[bytes], url: str, prefix: Path) -> bool:
    """True once nginx answers HTTP at ``url``; False if it exited (say, the port was taken)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            urllib.request.urlopen(f"{url}/.overt-nginx-probe", timeout=1)
        except urllib.error.HTTPError:
            return True  # a 404: nginx is answering
        except OSError:
            time.sleep(0.02)
            continue
        return True
    raise ConfigError(f"nginx did not answer at {url}: {(prefix / 'error.log').read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # SIGTERM: fast shutdown of master and workers
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr is not None:
        process.stderr.close()


@contextmanager
def nginx_server(root: Path, prefix: Path, binary: str | None = None) -> Iterator[Nginx]:
    """nginx serving ``root`` on a free loopback port, its state in ``prefix`` (created), until the exit."""
    exe = binary or nginx_binary()
    if exe is None:
        raise ConfigError("nginx is not installed (Debian package nginx)")
    prefix.mkdir(parents=True, exist_ok=True)
    for attempt in range(5):  # the free port may be taken between the probe and nginx's bind
        port = _free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(config(root.resolve(), prefix, port))
        (prefix / "access.log").write_text("")
        command = [exe, "-p", f"{prefix}/", "-c", str(conf), "-e", str(prefix / "error.log")]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        try:
            if _wait_until_answering(process, url, prefix):
                (prefix / "access.log").write_text("")  # forget the probe
                try:
                    yield Nginx(url=url, prefix=prefix)
                finally:
                    _stop(process)
                return
        except BaseException:
            _stop(process)
            raise
        stderr = process.stderr.read().decode() if process.stderr else ""
        _stop(process)
        if attempt == 4 or "Address already in use" not in stderr:
            raise ConfigError(f"nginx exited with status {process.returncode}: {stderr}")
    raise AssertionError("unreachable")
