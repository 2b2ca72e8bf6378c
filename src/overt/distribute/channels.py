"""Channel indexes: how an endpoint finds the newest version of what it follows without listing targets.

ngclient looks targets up by path; once the release role is split into hash bins (TAP 15) it cannot list
them. So each release also publishes a small target under a fixed path, naming the version it made current::

    channels/products/<product>/<channel>.json    the newest version of a product's channel
    channels/avdb/<database>.json                 the newest version of an AV database

The index is a TUF target like any other: listed (with its length and sha256) by the release role or its bin,
whose exact bytes are logged by digest; the stock client finds it by path. Its ``custom`` field carries what it
says, so an endpoint reads the channel from the signed metadata without downloading the file; the file holds
the same object, for clients that prefer to download it::

    {"overt": {"kind": "channel", "carries": "product", "product": "demo", "channel": "stable",
               "version": "2.0", "target": "products/demo/2.0/demo.tar.gz",
               "targetSha256": "<hex>", "targetLength": 1234}}

(for a database: ``"carries": "avdb"``, ``"database"`` and an integer ``"version"``, no channel). The
endpoint still looks the named target up and checks it is the one the index names: an index is a pointer,
never a substitute for the target's own metadata.

Owns the index's wire form; :mod:`overt.distribute.release` and :mod:`overt.distribute.databases` publish
it, :mod:`overt.distribute.endpoint` reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from overt import jsonio
from overt.distribute.layout import channel_path, database_channel_path
from overt.distribute.repository import NewTarget
from overt.errors import FormatError, UsageError

CHANNEL_KIND = "channel"
CARRIES_PRODUCT, CARRIES_AVDB = "product", "avdb"
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelIndex:
    """What one channel index says: the newest version of a product channel (or a database) and its target."""

    carries: str  # CARRIES_PRODUCT or CARRIES_AVDB
    name: str  # the product or database
    channel: str  # empty for a database
    version: str  # PEP 440 for a product, decimal for a database
    target: str
    sha256: str
    length: int

    def __post_init__(self) -> None:
        if self.carries not in (CARRIES_PRODUCT, CARRIES_AVDB):
            raise FormatError(f"channel index: carries {self.carries!r}, not product or avdb")
        if (self.carries == CARRIES_PRODUCT) != bool(self.channel):
            raise FormatError("channel index: a product index names a channel, a database index none")
        if len(self.sha256) != 64 or not set(self.sha256) <= _HEX:
            raise FormatError("channel index: targetSha256 is not 64 lowercase hex digits")
        if self.length < 0:
            raise FormatError("channel index: targetLength is negative")
        if self.carries == CARRIES_AVDB and not (self.version.isascii() and self.version.isdigit()):
            raise FormatError(f"channel index: database version {self.version!r} is not an integer")
        try:
            self.path  # noqa: B018 (the names must be path segments)
        except UsageError as e:
            raise FormatError(f"channel index: {e}") from e

    @property
    def path(self) -> str:
        """Where the index is published."""
        if self.carries == CARRIES_PRODUCT:
            return channel_path(self.name, self.channel)
        return database_channel_path(self.name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": CHANNEL_KIND, "carries": self.carries}
        if self.carries == CARRIES_PRODUCT:
            out.update(product=self.name, channel=self.channel, version=self.version)
        else:
            out.update(database=self.name, version=int(self.version))
        out.update(target=self.target, targetSha256=self.sha256, targetLength=self.length)
        return out

    def new_target(self) -> NewTarget:
        """The index as a target to publish with the release it points to."""
        return NewTarget(
            path=self.path, data=jsonio.dump(self.to_dict()) + b"\n", custom={"overt": self.to_dict()}
        )

    @classmethod
    def from_custom(cls, overt: Mapping[str, Any]) -> ChannelIndex:
        """The index from the ``overt`` object of its target's ``custom`` field (what TUF verified)."""
        what = "channel index"
        if overt.get("kind") != CHANNEL_KIND:
            raise FormatError(f"{what}: the target is a {overt.get('kind')!r}, not a channel index")
        carries = jsonio.req_str(dict(overt), "carries", what)
        version = overt.get("version")
        length = overt.get("targetLength")
        if not isinstance(length, int) or isinstance(length, bool):
            raise FormatError(f"{what}: targetLength is not an integer")
        if carries == CARRIES_AVDB:
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise FormatError(f"{what}: a database version is a positive integer")
            name, channel, shown = jsonio.req_str(dict(overt), "database", what), "", str(version)
        else:
            if not isinstance(version, str):
                raise FormatError(f"{what}: a product version is a string")
            name, shown = jsonio.req_str(dict(overt), "product", what), version
            channel = jsonio.req_str(dict(overt), "channel", what)
        return cls(
            carries=carries,
            name=name,
            channel=channel,
            version=shown,
            target=jsonio.req_str(dict(overt), "target", what),
            sha256=jsonio.req_str(dict(overt), "targetSha256", what),
            length=length,
        )
