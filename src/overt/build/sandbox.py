"""The bubblewrap sandbox a recipe's steps run in.

Inside: no network (all namespaces unshared, uid/gid 1000 in a user namespace), a read-only ``/usr`` (with the
merged-usr ``/bin``, ``/lib``, ``/lib64``, ``/sbin`` links), the few ``/etc`` files programs look up and, so
Debian tooling behaves as on the host, ``/etc/dpkg``, the dpkg database ``/var/lib/dpkg`` (which
:mod:`overt.build.environment` records) and the ``ld.so.conf`` files, all read-only; a
fresh ``/proc``, ``/dev`` and size-capped ``/tmp``, the source read-write at ``/build`` (the working
directory; another absolute path when the caller asks), each toolchain input read-only at
``/toolchain/<name>``, and an environment built from nothing: PATH, HOME, PYTHONHASHSEED and what the caller
passes (TZ, locale, SOURCE_DATE_EPOCH, the recipe's variables). The umask is the caller's (022 by default),
every file the build writes is capped by RLIMIT_FSIZE, all steps share one wall-time budget, and the sandbox
dies with its parent. Nothing of the caller's own environment reaches the build.

``sandboxed=False`` runs the same steps directly on the host (same environment, paths rewritten) and exists
only so the benchmark can measure the sandbox's overhead.
"""

from __future__ import annotations

import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from overt.errors import BuildError, ConfigError

BUILD_DIR = "/build"
SANDBOX_UID = 1000
LOG_TAIL = 8192
FAKETIME_LIBS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
)
_ETC = (
    "/etc/ld.so.cache",
    "/etc/alternatives",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    # What Debian tooling reads to behave as on the host: without them dpkg-buildflags returns empty flags.
    "/etc/dpkg",
    "/var/lib/dpkg",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
)


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise ConfigError("bubblewrap is not installed: apt-get install bubblewrap")
    return path


_checked: str | None = None


def check_sandbox() -> str:
    """The bwrap binary, after proving (once per process) it can create the namespaces a build needs."""
    global _checked
    if _checked is not None:
        return _checked
    bwrap = bwrap_path()
    probe = subprocess.run(
        [
            bwrap,
            "--unshare-all",
            "--unshare-user",
            "--uid",
            str(SANDBOX_UID),
            "--die-with-parent",
            "--ro-bind",
            "/usr",
            "/usr",
            *_merged_usr(),
            "--",
            "/usr/bin/true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        raise ConfigError(
            "bubblewrap cannot create a sandbox here (are user namespaces blocked? "
            "try sysctl kernel.unprivileged_userns_clone=1 or user.max_user_namespaces): "
            + probe.stderr.strip()[-300:]
        )
    _checked = bwrap
    return bwrap


def faketime_lib() -> str | None:
    return next((p for p in FAKETIME_LIBS if Path(p).exists()), None)


def _merged_usr() -> list[str]:
    args: list[str] = []
    for top in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        p = Path(top)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), top]
        elif p.is_dir():
            args += ["--ro-bind", top, top]
    return args


@dataclass(frozen=True, slots=True, kw_only=True)
class StepsResult:
    seconds: float
    log_tail: str


def build_env(base: Mapping[str, str]) -> dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp/home", "PYTHONHASHSEED": "0"}
    env.update(base)
    return env


def _limits(max_bytes: int, umask: int) -> None:
    os.umask(umask)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _sandbox_argv(
    bwrap: str,
    *,
    build_dir: Path,
    build_path: str,
    toolchain: Mapping[str, Path],
    env: Mapping[str, str],
    tmp_bytes: int,
) -> list[str]:
    argv = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "overt-build",
        "--ro-bind",
        "/usr",
        "/usr",
        *_merged_usr(),
    ]
    for path in _ETC:
        argv += ["--ro-bind-try", path, path]
    argv += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(tmp_bytes),
        "--tmpfs",
        "/tmp",
        "--dir",
        "/tmp/home",
    ]
    argv += ["--bind", str(build_dir), build_path, "--chdir", build_path]
    for mount, host in sorted(toolchain.items()):
        argv += ["--ro-bind", str(host), mount]
    argv.append("--clearenv")
    for k, v in sorted(env.items()):
        argv += ["--setenv", k, v]
    return [*argv, "--"]


def _host_rewrite(value: str, *, build_dir: Path, build_path: str, toolchain: Mapping[str, Path]) -> str:
    for mount, host in toolchain.items():
        value = value.replace(mount, str(host))
    return value.replace(build_path, str(build_dir))


STEP_MARK = "::overt-step "


def driver_script(steps: Sequence[Sequence[str]]) -> str:
    """One ``sh -e`` script running every step in order, marking each in the log so a failure names its step."""
    lines = ["set -e"]
    for n, step in enumerate(steps, 1):
        lines.append(f"echo {shlex.quote(f'{STEP_MARK}{n}:: $ {shlex.join(step)}')}")
        lines.append(shlex.join(step))
    return "\n".join(lines) + "\n"


def failed_step(log_text: str) -> int:
    marks = re.findall(re.escape(STEP_MARK) + r"(\d+)::", log_text)
    return int(marks[-1]) if marks else 1


_SYSTEM_MOUNTS = ("", "usr", "proc", "dev", "tmp", "toolchain", "etc", "var", "bin", "sbin", "lib", "lib64",
                  "lib32")  # fmt: skip


def _faketime_env(faketime: str | None) -> dict[str, str]:
    if faketime is None:
        return {}
    lib = faketime_lib()
    if lib is None:
        raise ConfigError("libfaketime is not installed: apt-get install faketime")
    # NO_FAKE_STAT: shift the clock, not the mtimes of the files the build reads.
    return {"LD_PRELOAD": lib, "FAKETIME": faketime, "FAKETIME_DONT_FAKE_MONOTONIC": "1", "NO_FAKE_STAT": "1"}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Command:
    argv: list[str]
    env: dict[str, str]
    cwd: Path | None


def _command(
    script: str,
    *,
    build_dir: Path,
    build_path: str,
    toolchain: Mapping[str, Path],
    env: dict[str, str],
    tmp_bytes: int,
    sandboxed: bool,
) -> _Command:
    """The process that runs ``script``: bwrap (its --clearenv leaves the build ``env`` and nothing else), or,
    for the benchmark, the same script on the host with the sandbox's paths rewritten to the host's."""
    if sandboxed:
        bwrap = check_sandbox()
        prefix = _sandbox_argv(
            bwrap,
            build_dir=build_dir,
            build_path=build_path,
            toolchain=toolchain,
            env=env,
            tmp_bytes=tmp_bytes,
        )
        return _Command(argv=[*prefix, "/bin/sh", "-c", script], env={}, cwd=None)
    host_env = {
        k: _host_rewrite(v, build_dir=build_dir, build_path=build_path, toolchain=toolchain)
        for k, v in env.items()
    }
    (build_dir / ".home").mkdir(exist_ok=True)
    host_env["HOME"] = str(build_dir / ".home")
    argv = [
        "/bin/sh",
        "-c",
        _host_rewrite(script, build_dir=build_dir, build_path=build_path, toolchain=toolchain),
    ]
    return _Command(argv=argv, env=host_env, cwd=build_dir)


def run_steps(
    steps: Sequence[Sequence[str]],
    *,
    build_dir: Path,
    toolchain: Mapping[str, Path],
    env: Mapping[str, str],
    timeout: float,
    max_output_bytes: int,
    log_path: Path,
    faketime: str | None = None,
    umask: int = 0o022,
    build_path: str = BUILD_DIR,
    sandboxed: bool = True,
) -> StepsResult:
    """Run ``steps`` in order in ``build_dir``, all in one sandbox; raise BuildError on a failure or the timeout.

    ``build_dir`` is seen inside as ``build_path`` (the working directory); ``umask`` is the steps' umask.
    """
    if not build_path.startswith("/") or build_path.split("/")[1] in _SYSTEM_MOUNTS:
        raise ValueError(
            f"build_path {build_path!r} must be absolute and outside the sandbox's system mounts"
        )
    command = _command(
        driver_script(steps),
        build_dir=build_dir,
        build_path=build_path,
        toolchain=toolchain,
        env=build_env(env) | _faketime_env(faketime),
        tmp_bytes=max_output_bytes,
        sandboxed=sandboxed,
    )
    start = time.monotonic()
    with log_path.open("ab") as log:
        try:
            proc = subprocess.Popen(
                command.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=command.env,
                cwd=command.cwd,
                start_new_session=True,
                preexec_fn=lambda: _limits(max_output_bytes, umask),
            )
        except OSError as e:
            raise BuildError(f"the build could not start: {e}") from e
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            tail = _tail(log_path)
            n = failed_step(tail)
            raise BuildError(
                f"build timed out after {timeout:g} s (in step {n})", step=list(steps[n - 1]), log=tail
            ) from None
    if rc != 0:
        tail = _tail(log_path)
        n = failed_step(tail)
        why = f"signal {-rc}" if rc < 0 else f"exit status {rc}"
        if rc in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
            why += f" (a file exceeded the {max_output_bytes}-byte output limit)"
        raise BuildError(f"step {n} failed with {why}", step=list(steps[n - 1]), log=tail)
    return StepsResult(seconds=time.monotonic() - start, log_tail=_tail(log_path))


def _tail(path: Path) -> str:
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - LOG_TAIL))
        return f.read().decode(errors="replace")
