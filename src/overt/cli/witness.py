"""``overt witness ...``: run a tlog-witness that cosigns logs it trusts."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

import typer

from overt.atomic import atomic_write
from overt.cli.common import console
from overt.errors import ConfigError, TransportError
from overt.tlog.cosignature import CosignatureSigner, parse_cosignature_skey
from overt.tlog.note import check_key_name, parse_ed25519_vkey
from overt.tlog.witness import Witness

app = typer.Typer(help="A tlog-witness: cosigns checkpoints of logs it follows.", no_args_is_help=True)

WHome = Annotated[Path, typer.Option(help="witness home directory")]


def load_witness(home: Path) -> Witness:
    try:
        signer = parse_cosignature_skey((home / "witness.skey").read_text())
        conf = tomllib.loads((home / "witness.toml").read_text())
    except OSError as e:
        raise ConfigError(f"{home} is not a witness home ({e.strerror}); run 'overt witness init'") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{home / 'witness.toml'}: {e}") from e
    logs = [parse_ed25519_vkey(v) for v in conf.get("logs", [])]
    return Witness(signer, logs, home / "state.json")


def init_witness(home: Path, name: str) -> CosignatureSigner:
    import secrets

    check_key_name(name)
    if (home / "witness.skey").exists():
        return parse_cosignature_skey((home / "witness.skey").read_text())
    home.mkdir(parents=True, exist_ok=True)
    signer = CosignatureSigner.create(name, secrets.token_bytes(32))
    atomic_write(home / "witness.skey", (signer.skey() + "\n").encode(), mode=0o600)
    atomic_write(home / "witness.vkey", (signer.verifier().vkey() + "\n").encode())
    atomic_write(home / "witness.toml", b"logs = []\n")
    return signer


def trust_log(home: Path, vkey: str) -> None:
    parse_ed25519_vkey(vkey)
    conf = tomllib.loads((home / "witness.toml").read_text())
    logs = list(dict.fromkeys([*conf.get("logs", []), vkey]))
    atomic_write(
        home / "witness.toml", ("logs = [\n" + "".join(f'  "{v}",\n' for v in logs) + "]\n").encode()
    )


@app.command()
def init(
    home: WHome, name: Annotated[str, typer.Option(help="witness name, e.g. witness.example/w1")]
) -> None:
    """Create a witness home with a fresh cosignature/v1 key; print its vkey."""
    signer = init_witness(home, name)
    console.print(signer.verifier().vkey())


@app.command("add-log")
def add_log(home: WHome, vkey: Annotated[str, typer.Argument(help="the log's signed-note vkey")]) -> None:
    """Trust a log (by its vkey; its name is the origin)."""
    trust_log(home, vkey)
    console.print(f"witness at {home} now follows {vkey.split('+')[0]}")


@app.command()
def serve(
    home: WHome,
    host: Annotated[str, typer.Option(help="listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="listen port")] = 8090,
) -> None:
    """Serve add-checkpoint and the monitoring checkpoint endpoint."""
    import uvicorn

    from overt.server.witness import create_app

    w = load_witness(home)
    console.print(
        f"witness {w.signer.name} on http://{host}:{port} following {sorted(w.logs) or 'no log yet'}"
    )
    try:
        uvicorn.run(create_app(w), host=host, port=port, log_level="warning")
    except OSError as e:
        raise TransportError(f"cannot listen on {host}:{port}: {e}") from e
