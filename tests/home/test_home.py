"""The home split into paths and configuration: a registry of config sections, and logs opened by name."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from overt.errors import ConfigError
from overt.home import MAIN_LOG, Config, Home, HomePaths, LogConfig, config, register_section, sections
from overt.keys.registry import Role
from overt.tlog.client import LogClient, directory_fetcher
from overt.tlog.guard import StaleDatabaseError
from overt.tlog.policy import Policy


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
