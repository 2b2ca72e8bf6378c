"""The home split into paths and configuration: a registry of config sections, and logs opened by name."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from overt.errors import ConfigError, FormatError
from overt.home import MAIN_LOG, Config, Home, HomePaths, LogConfig, config, register_section, sections
from overt.keys.registry import Role
from overt.tlog.client import LogClient, directory_fetcher
from overt.tlog.guard import StaleDatabaseError
from overt.tlog.policy import Policy
from tests.cli.test_cli import overt


def test_the_main_log_keeps_the_layout_homes_always_had(tmp_path: Path) -> None:
    paths = HomePaths(tmp_path)
    main = paths.log(MAIN_LOG)
    assert (main.public, main.policy, main.database) == (
        tmp_path / "public" / "log",
        tmp_path / "log-policy",
        tmp_path / "overt.db",
    )
    assert (main.head, main.lock, main.server) == (
        tmp_path / "log-head",
        tmp_path / "log.lock",
        tmp_path / "log.server",
    )
    other = paths.log("access-ch")
    assert other.public == tmp_path / "public" / "logs" / "access-ch"
    assert other.lock == tmp_path / "logs" / "access-ch" / "log.lock"
    for bad in ("", "../x", "Main", "a/b", ".hidden", "x" * 64):
        with pytest.raises(ConfigError, match="log name"):
            paths.log(bad)


def test_a_second_log_is_independent_of_the_first(tmp_path: Path) -> None:
    home = Home.init(tmp_path / "h", origin="main.overt.example/log")
    home.log.append(b"main 0")
    access = home.add_log("access-ch", origin="access.overt.example/ch")
    assert Home(home.path).log_names() == ["main", "access-ch"]
    # Its own key (a second log key in the registry), its own size-0 checkpoint, its own tree.
    logs = [r for r in home.registry.records() if r.role is Role.LOG]
    assert len(logs) == 2
    assert access.append(b"access 0").index == 0
    assert access.append(b"access 1").index == 1
    assert home.log.append(b"main 1").index == 1
    # Both verify as tlog-tiles logs under their own policies, each holding only its own entries.
    for name, expected in (("main", [b"main 0", b"main 1"]), ("access-ch", [b"access 0", b"access 1"])):
        log = Home(home.path).log_named(name)
        client = LogClient(
            directory_fetcher(log.paths.public), Policy.from_bytes(log.paths.policy.read_bytes())
        )
        checkpoint = client.update().checkpoint.checkpoint
        assert checkpoint.origin == log.config.origin
        assert client.entries(checkpoint.tree_size) == expected
    # The main log's key is now pinned in config.toml: a second log key never confuses it.
    data = tomllib.loads((home.path / "config.toml").read_text())
    assert data["log"]["key"] == home.log_key().keyid
    assert data["logs"]["access-ch"]["key"] != data["log"]["key"]


def test_each_named_log_guards_its_own_database(tmp_path: Path) -> None:
    home = Home.init(tmp_path / "h", origin="main.overt.example/log")
    access = home.add_log("access-ch", origin="access.overt.example/ch")
    access.append(b"a")
    access.paths.database.unlink()  # the access log's database is lost
    with pytest.raises(StaleDatabaseError):
        Home(home.path).log_named("access-ch").open()
    home.log.append(b"the main log is unaffected")
    assert Home(home.path).log_named("access-ch").recover().tree_size == 1


def test_log_names_and_origins_are_unique(tmp_path: Path) -> None:
    home = Home.init(tmp_path / "h", origin="main.overt.example/log")
    home.add_log("access-ch", origin="access.overt.example/ch")
    with pytest.raises(ConfigError, match="already has a log 'access-ch'"):
        home.add_log("access-ch", origin="other.overt.example/ch")
    with pytest.raises(ConfigError, match="already has the origin"):
        home.add_log("access-de", origin="main.overt.example/log")
    with pytest.raises(ConfigError, match="already has a log 'main'"):
        home.add_log("main", origin="third.overt.example/log")
    with pytest.raises(ConfigError, match="no log 'access-us'"):
        home.log_named("access-us")


def test_a_home_from_before_named_logs_opens_and_pins_its_key(tmp_path: Path) -> None:
    home = Home.init(tmp_path / "h", origin="old.overt.example/log")
    cfg = home.path / "config.toml"
    cfg.write_text(cfg.read_text().replace(f'key = "{home.log_key().keyid}"\n', ""))
    assert "key =" not in cfg.read_text()
    old = Home(home.path)
    assert old.log.append(b"still works").index == 0
    old.add_log("access-ch", origin="access.overt.example/ch")
    assert tomllib.loads(cfg.read_text())["log"]["key"] == home.log_key().keyid
    assert Home(home.path).log.append(b"and after").index == 1


def test_config_sections_come_from_the_registry(tmp_path: Path) -> None:
    assert [s.name for s in sections()][:4] == ["log", "logs", "conveyor", "hsm"]
    text = Config.defaults().with_log("x", LogConfig(origin='q"uote.example/x')).dumps()
    assert "# [conveyor]" in text and "# [logs.NAME]" in text
    parsed = Config.parse(text)
    assert parsed.named("logs", LogConfig)["x"].origin == 'q"uote.example/x'
    with pytest.raises(ConfigError, match=r"\[logs.x\] settings colour"):
        Config.parse(text.replace("[logs.x]\n", "[logs.x]\ncolour = 1\n"))
    with pytest.raises(ConfigError, match="registered twice"):
        register_section("log", LogConfig, "again")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("batch_size = 4096", "batch_size = true", r"\[log\] batch_size must be an integer$"),
        ("batch_size = 4096", "batch_size = 4096.0", r"\[log\] batch_size must be an integer$"),
        ('postgres_dsn = ""', "postgres_dsn = 5", r"\[log\] postgres_dsn must be a string$"),
        ("batch_interval = 0.05", 'batch_interval = "1s"', r"\[log\] batch_interval must be a number$"),
        ("batch_interval = 0.05", "batch_interval = false", r"\[log\] batch_interval must be a number$"),
        ('pin_env = "OVERT_HSM_PIN"', "pin_env = 3", r"\[hsm\] pin_env must be a string$"),
        ('jurisdiction = "CH"', "jurisdiction = 5", r"\[conveyor\] jurisdiction must be a string$"),
    ],
)
def test_a_setting_of_the_wrong_type_is_refused_by_name(old: str, new: str, message: str) -> None:
    text = Config.defaults().dumps()
    assert old in text
    with pytest.raises(ConfigError, match=message):
        Config.parse(text.replace(old, new))


def test_a_float_setting_takes_an_integer_and_a_named_section_takes_only_tables() -> None:
    text = Config.defaults().dumps()
    assert Config.parse(text.replace("batch_interval = 0.05", "batch_interval = 1")).section("log", LogConfig)
    with pytest.raises(ConfigError, match=r"\[tuf\] must hold tables \[tuf.NAME\], not a setting such as x$"):
        Config.parse(text + "\n[tuf]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"\[logs\] must hold tables \[logs.NAME\]"):
        Config.parse(text + "\n[logs]\norigin = 'a.example/log'\n")


def test_a_registered_section_is_read_and_written(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclass(frozen=True, slots=True, kw_only=True)
    class Probe:
        level: int = 1

    # Registered in a copy of the registry, so the homes other tests write never carry it.
    monkeypatch.setattr(config, "_SECTIONS", dict(config._SECTIONS))
    name = "probe"
    register_section(name, Probe, "a section a later capability adds")
    assert "# [probe]  a section a later capability adds" in Config.defaults().dumps()
    text = Config.defaults().replace(name, Probe(level=7)).dumps()
    assert Config.parse(text).section(name, Probe) == Probe(level=7)
    assert Config.parse(text.replace("level = 7", "")).section(name, Probe) == Probe(level=1)


def test_a_section_registered_elsewhere_is_known_to_every_reader(tmp_path: Path) -> None:
    """[tuf.ROLE] is registered by overt.distribute; a process that imports only overt.home still reads a home
    that configures it (config.toml refuses sections it does not know)."""
    home = Home.init(tmp_path / "h")
    cfg = home.paths.config
    cfg.write_text(cfg.read_text() + "\n[tuf.timestamp]\nexpires_hours = 2\n")
    probe = "import sys; from pathlib import Path; from overt.home import Home; Home(Path(sys.argv[1]))"
    r = subprocess.run([sys.executable, "-c", probe, str(home.path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cfg.write_text(cfg.read_text() + "\n[tuf.nonsense]\nexpires_hours = 2\n")
    r = subprocess.run([sys.executable, "-c", probe, str(home.path)], capture_output=True, text=True)
    assert r.returncode != 0 and "nonsense" in r.stderr


# --- what a home is made with, and keeps --------------------------------------------------------------------


def test_the_conveyors_jurisdiction_cannot_change_once_the_home_exists(tmp_path: Path) -> None:
    """The tester's bypass: config.toml edited from CH to DE after publishing, then DE keys made and used."""
    home = Home.init(tmp_path / "h", origin="pinned.overt.example/log", jurisdiction="CH")
    cfg = home.paths.config
    text = cfg.read_text()
    cfg.write_text(text.replace('jurisdiction = "CH"', 'jurisdiction = "DE"'))
    with pytest.raises(ConfigError, match=r"jurisdiction = 'DE', but this home was made in CH") as e:
        Home(home.path)
    assert (
        e.value.evidence["home_jurisdiction"] == "CH" and e.value.evidence["configured_jurisdiction"] == "DE"
    )
    keys = sorted(home.paths.keys.rglob("*"))
    r = overt("keys", "generate", "--home", str(home.path), "--role", "builder")
    assert r.returncode == 2 and "made in CH" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert sorted(home.paths.keys.rglob("*")) == keys
    cfg.write_text(text)
    assert Home(home.path).conveyor.jurisdiction == "CH"


def test_init_checks_the_origin_before_it_writes_anything(tmp_path: Path) -> None:
    path = tmp_path / "h3"
    r = overt("init", "--home", str(path), "--origin", "ex\x01/log")
    assert r.returncode == 2 and "control character 0x01" in r.stderr and "Traceback" not in r.stderr
    assert not path.exists()
    r = overt("init", "--home", str(path), "--origin", "good.example/log")
    assert r.returncode == 0 and "overt home created" in r.stdout, r.stderr
    assert Home(path).log.append(b"works").index == 0
    with pytest.raises(FormatError, match="control character 0x7f"):
        Home.init(tmp_path / "h4", origin="ex\x7f/log")
    assert not (tmp_path / "h4").exists()


def test_a_failed_init_leaves_nothing_and_a_half_made_home_is_refused(tmp_path: Path) -> None:
    no_module = ("--log-key", "hsm", "--hsm-module", str(tmp_path / "no-such-pkcs11.so"))
    path = tmp_path / "h"
    r = overt("init", "--home", str(path), *no_module)
    assert r.returncode == 2 and "does not exist" in r.stderr, r.stderr
    assert not path.exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("kept\n")
    assert overt("init", "--home", str(mine), *no_module).returncode == 2
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    # What an init killed half-way leaves behind: keys and a policy, but no config.toml.
    (path / "keys" / "registry").mkdir(parents=True)
    (path / "log-policy").write_text("quorum none\n")
    r = overt("init", "--home", str(path), "--origin", "good.example/log")
    assert r.returncode == 2 and "has no config.toml but holds keys, log-policy, which an overt" in r.stderr
    assert sorted(p.name for p in path.iterdir()) == ["keys", "log-policy"]
    with pytest.raises(ConfigError, match=r"Nothing was changed: restore its config\.toml from a backup"):
        Home.init(path)


def test_init_on_an_existing_home_refuses_settings_it_does_not_have(tmp_path: Path) -> None:
    H = ("--home", str(tmp_path / "h"))
    assert overt("init", *H, "--origin", "mine.example/log").returncode == 0
    r = overt("init", *H, "--origin", "other.example/log", "--jurisdiction", "DE", "--json")
    assert r.returncode == 2, r.stdout
    message = json.loads(r.stderr)["message"]
    assert "--origin 'other.example/log' (the home's is 'mine.example/log')" in message
    assert "--jurisdiction 'DE' (the home's is 'CH')" in message
    r = overt("init", *H, "--store", "postgres", "--postgres-dsn", "postgresql://u:secret@db.example/x")
    assert r.returncode == 2 and "--store 'postgres'" in r.stderr and "secret" not in r.stderr
    for same in ((), ("--origin", "mine.example/log"), ("--jurisdiction", "CH", "--log-key", "file")):
        r = overt("init", *H, *same, "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["created"] is False, (same, r.stderr)
    assert Home(tmp_path / "h").log.config.origin == "mine.example/log"
