"""Where a verifying client fetches from: a malformed log URL is a usage error before anything is fetched."""

from __future__ import annotations

from pathlib import Path

import pytest

from overt.errors import TransportError, UsageError
from overt.tlog.client import check_http_url, fetcher_for, http_fetcher


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:abc/", r"^http://127.0.0.1:abc/ is not a valid URL: Invalid port: 'abc'$"),
        ("http://[::1", r"^http://\[::1 is not a valid URL: Invalid port: ':1'$"),
        ("https://[zz]/", r"^https://\[zz\]/ is not a valid URL: Invalid IPv6 address: '\[zz\]'$"),
        ("http://", r"^http:// is not an http:// or https:// URL with a host$"),
        ("ftp://example.org/log", r"is not an http:// or https:// URL with a host$"),
    ],
)
def test_a_malformed_url_is_a_usage_error(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check_http_url(url)
    if url.startswith("http"):
        with pytest.raises(UsageError, match=message):
            fetcher_for(url)


def test_a_well_formed_url_and_a_directory_are_sources(tmp_path: Path) -> None:
    assert check_http_url("https://log.example/prefix/") == "https://log.example/prefix/"
    assert check_http_url("http://[::1]:8080") == "http://[::1]:8080"
    (tmp_path / "checkpoint").write_bytes(b"cp")
    assert fetcher_for(str(tmp_path))("checkpoint") == b"cp"


def test_a_fetcher_made_without_the_check_fails_as_a_transport_error() -> None:
    with pytest.raises(TransportError, match=r"GET http://\[::1/checkpoint failed: Invalid port"):
        http_fetcher("http://[::1")("checkpoint")


def test_a_checkpoint_that_does_not_parse_does_not_verify_and_a_missing_tile_is_named(tmp_path: Path) -> None:
    """A log serving garbage as its checkpoint fails verification (exit 1), not as bad input (exit 2); a
    partial tile missing, with no full tile either, is named as the partial tile that was asked for."""
    from overt.errors import VerificationError
    from overt.home import Home
    from overt.tlog.client import LogClient, directory_fetcher

    home = Home.init(tmp_path / "h", origin="example.com/log")
    for i in range(3):
        home.log.append(f"entry {i}".encode())
    public = home.log.paths.public
    client = LogClient(directory_fetcher(public), home.log.policy())
    size = client.update().checkpoint.checkpoint.tree_size
    (public / "tile" / "entries" / "000.p" / str(size)).unlink()
    with pytest.raises(TransportError, match=r"entries/000\.p/3 does not exist, nor the full tile"):
        client.entries(size)
    (public / "checkpoint").write_bytes(b"no blank line\n")
    with pytest.raises(VerificationError, match="checkpoint does not parse") as e:
        client.update()
    assert e.value.exit_code == 1
