"""The customer's trust policy: a TOML file the customer owns, from which an endpoint takes every trust root.

The vendor's release key never ships it, and nothing the endpoint downloads can change it (DESIGN,
invariants: a verifier takes its trust roots from a policy it pins). ``overt agent init --policy FILE`` pins
it into the agent directory as a self-contained copy (:meth:`TrustPolicy.to_pinned_bytes`): every file it
names is read once, checked, and written inline, so a later change to those files changes nothing until the
customer pins again. The format, field by field, is docs/trust-policy.md::

    [repository]
    url = "https://updates.example.com/tuf"   # metadata/, targets/ and evidence/ are under it
    root = "root.json"                         # the TUF root to bootstrap from (or root_base64 = "...")
    root_sha256 = "<hex>"                      # required: the root file is checked against it

    [log]
    url = "https://updates.example.com/log"   # the log's checkpoint and tiles (C2SP tlog-tiles)
    policy = "log.policy"                      # C2SP tlog-policy: log vkey, witness vkeys, quorum
                                               # (or policy_text = "log ...\\nwitness ...\\nquorum ...\\n")
    [auditors]
    keys = ["auditor-a.json", "auditor-b.json"]  # public key files, or inline {keytype, scheme, keyval}
    threshold = 2                                # k distinct keys with a logged PASSED VSA

    [builders]
    ids = ["https://conveyor.example/builder/v1?jurisdiction=CH"]  # exact builder.id strings accepted
    keys = ["builder.json"]                      # keys that may sign provenance
    threshold = 1

    [freshness]
    max_cosignature_age_hours = 24    # the newest quorum of witness cosignatures may be this old

    [[follow]]
    product = "demo"
    channel = "stable"                # default: stable
    [[follow]]
    database = "main"                 # an AV database

    [install]
    hook = ["/usr/bin/systemctl", "reload", "demo"]   # optional, run after each install (no shell)
    hook_timeout_seconds = 600

Every malformed or inconsistent field is a :class:`~overt.errors.ConfigError` naming the file and the field:
the customer fixes the policy (exit 2). Relative paths are relative to the policy file. A log policy without a
witness quorum is refused: without witnesses an endpoint cannot tell a split view or a frozen log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import tomli_w
from securesystemslib.signer import Key, SSlibKey
from securesystemslib.signer._utils import compute_default_keyid
from tuf.api.exceptions import RepositoryError
from tuf.api.metadata import Metadata, Root

from overt import jsonio
from overt.attest.verify import key_identity
from overt.distribute.layout import check_segment
from overt.distribute.release import DEFAULT_CHANNEL
from overt.errors import ConfigError, Error, UsageError
from overt.files import read_regular_file
from overt.keys.registry import check_public_key
from overt.tlog.policy import Policy

PRODUCT, DATABASE = "product", "avdb"
MAX_POLICY_BYTES = 1 << 20
MAX_ROOT_BYTES = 512_000  # python-tuf's default root_max_length
MAX_FILE_BYTES = 1 << 16
MAX_ITEMS = 256
MAX_AGE_HOURS = 24 * 365
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")  # below U+0020, but for tab and newline
DEFAULT_AGE_HOURS = 24
DEFAULT_HOOK_TIMEOUT = 600
_TABLES = {"repository", "log", "auditors", "builders", "freshness", "follow", "install", "pinned"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Follow:
    """One thing the endpoint follows: a product's channel, or an AV database."""

    kind: str  # PRODUCT or DATABASE
    name: str
    channel: str = ""  # products only

    @property
    def label(self) -> str:
        """How the user reads it: ``demo (stable)`` or ``avdb main``."""
        return f"{self.name} ({self.channel})" if self.kind == PRODUCT else f"avdb {self.name}"

    @property
    def key(self) -> str:
        """A file name for what the agent records about it."""
        return f"product-{self.name}-{self.channel}" if self.kind == PRODUCT else f"avdb-{self.name}"

    def to_dict(self) -> dict[str, str]:
        if self.kind == PRODUCT:
            return {"product": self.name, "channel": self.channel}
        return {"database": self.name}


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustPolicy:
    """A parsed trust policy: every trust root as data, never as a path (see the module docstring)."""

    repository_url: str
    root: bytes  # the exact bytes of the TUF root to bootstrap from
    log_url: str
    log_policy: Policy
    auditor_keys: tuple[Key, ...]  # distinct keys (a key listed twice is kept once)
    auditor_threshold: int
    builder_ids: tuple[str, ...]
    builder_keys: tuple[Key, ...]
    builder_threshold: int
    follows: tuple[Follow, ...]
    max_cosignature_age: timedelta
    hook: tuple[str, ...] = ()
    hook_timeout: int = DEFAULT_HOOK_TIMEOUT
    source: str = ""  # the customer's file this was pinned from
    sha256: str = field(default="")  # the SHA-256 of that file, byte for byte

    def __post_init__(self) -> None:
        for what, keys, k in (
            ("auditors", self.auditor_keys, self.auditor_threshold),
            ("builders", self.builder_keys, self.builder_threshold),
        ):
            if not 1 <= k <= len(keys):
                raise ConfigError(
                    f"[{what}] threshold {k} must be between 1 and the {len(keys)} distinct key(s) listed"
                )
        if not self.follows:
            raise ConfigError("the policy follows nothing: add a [[follow]] table")

    @property
    def root_sha256(self) -> str:
        return hashlib.sha256(self.root).hexdigest()

    @classmethod
    def from_toml(cls, data: bytes, *, source: str, base: Path | None) -> TrustPolicy:
        """Parse a policy file; ``base`` is where its relative paths start (None: a pinned copy, which names
        no file)."""
        return _Parser(source, base).policy(data)

    @classmethod
    def from_file(cls, path: Path) -> TrustPolicy:
        return cls.from_toml(_read(path, str(path), MAX_POLICY_BYTES), source=str(path), base=path.parent)

    def to_pinned_bytes(self) -> bytes:
        """The self-contained copy ``overt agent init`` writes: everything inline, its origin recorded."""
        doc: dict[str, Any] = {
            "pinned": {"from": self.source, "sha256": self.sha256},
            "repository": {
                "url": self.repository_url,
                "root_base64": base64.b64encode(self.root).decode(),
                "root_sha256": self.root_sha256,
            },
            "log": {"url": self.log_url, "policy_text": self.log_policy.to_bytes().decode()},
            "auditors": {
                "keys": [_key_table(k) for k in self.auditor_keys],
                "threshold": self.auditor_threshold,
            },
            "builders": {
                "ids": list(self.builder_ids),
                "keys": [_key_table(k) for k in self.builder_keys],
                "threshold": self.builder_threshold,
            },
            "freshness": {"max_cosignature_age_hours": self.max_cosignature_age / timedelta(hours=1)},
            "follow": [f.to_dict() for f in self.follows],
        }
        if self.hook:
            doc["install"] = {"hook": list(self.hook), "hook_timeout_seconds": self.hook_timeout}
        header = "# Pinned by 'overt agent init': edit the customer's policy file and pin it again instead.\n"
        text = tomli_w.dumps(doc)
        # The root, a few kilobytes of base64, as a literal string: the same value (base64 holds no quote or
        # escape), which tomllib reads with one search instead of a loop over each character, on every update.
        root = doc["repository"]["root_base64"]
        basic = f'root_base64 = "{root}"\n'
        assert text.count(basic) == 1
        return header.encode() + text.replace(basic, f"root_base64 = '{root}'\n").encode()

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "repository": self.repository_url,
            "root_sha256": self.root_sha256,
            "log": self.log_url,
            "log_quorum": self.log_policy.quorum,
            "witnesses": [w.name for w in self.log_policy.witnesses],
            "auditors": {"keyids": [k.keyid for k in self.auditor_keys], "threshold": self.auditor_threshold},
            "builders": {
                "ids": list(self.builder_ids),
                "keyids": [k.keyid for k in self.builder_keys],
                "threshold": self.builder_threshold,
            },
            "max_cosignature_age_hours": self.max_cosignature_age / timedelta(hours=1),
            "follow": [f.to_dict() for f in self.follows],
            "hook": list(self.hook),
        }


def _key_table(key: Key) -> dict[str, Any]:
    return {"keytype": key.keytype, "scheme": key.scheme, "keyval": dict(key.keyval)}


def _read(path: Path, what: str, limit: int) -> bytes:
    """A regular file of at most ``limit`` bytes (a FIFO or a device is refused, never read)."""
    try:
        return read_regular_file(path, limit=limit)
    except UsageError as e:
        raise ConfigError(f"{what}: {e}") from e


class _Parser:
    """Reads one policy file; every error names the file (and the field)."""

    def __init__(self, source: str, base: Path | None) -> None:
        self.source = source
        self.base = base

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"trust policy {self.source}: {message}", policy=self.source)

    def policy(self, data: bytes) -> TrustPolicy:
        if len(data) > MAX_POLICY_BYTES:
            raise self.fail(f"larger than {MAX_POLICY_BYTES} bytes")
        try:
            doc = tomllib.loads(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise self.fail("not UTF-8") from e
        except tomllib.TOMLDecodeError as e:
            raise self.fail(f"not TOML: {e}") from e
        unknown = set(doc) - _TABLES
        if unknown:
            raise self.fail(f"unknown table or key {sorted(unknown)[0]!r}")
        pinned = self.table(doc, "pinned", {"from", "sha256"}, required=False)
        repo = self.table(doc, "repository", {"url", "root", "root_base64", "root_sha256"})
        log = self.table(doc, "log", {"url", "policy", "policy_text"})
        auditors = self.table(doc, "auditors", {"keys", "threshold"})
        builders = self.table(doc, "builders", {"ids", "keys", "threshold"})
        fresh = self.table(doc, "freshness", {"max_cosignature_age_hours"}, required=False)
        install = self.table(doc, "install", {"hook", "hook_timeout_seconds"}, required=False)
        auditor_keys, auditor_k = self.keys(auditors, "auditors", "auditor")
        builder_keys, builder_k = self.keys(builders, "builders", "builder")
        hook, timeout = self.hook(install)
        try:
            return TrustPolicy(
                repository_url=self.url(repo, "repository"),
                root=self.root(repo),
                log_url=self.url(log, "log"),
                log_policy=self.log_policy(log),
                auditor_keys=auditor_keys,
                auditor_threshold=auditor_k,
                builder_ids=self.builder_ids(builders),
                builder_keys=builder_keys,
                builder_threshold=builder_k,
                follows=self.follows(doc.get("follow")),
                max_cosignature_age=self.age(fresh),
                hook=hook,
                hook_timeout=timeout,
                source=self.string(pinned, "pinned", "from") if pinned else self.source,
                sha256=self.pinned_sha(pinned) if pinned else hashlib.sha256(data).hexdigest(),
            )
        except ConfigError as e:
            if e.message.startswith("trust policy "):
                raise
            raise self.fail(e.message) from e

    # --- shapes ------------------------------------------------------------------------------------------

    def table(
        self, doc: Mapping[str, Any], name: str, keys: set[str], *, required: bool = True
    ) -> dict[str, Any]:
        value = doc.get(name)
        if value is None:
            if required:
                raise self.fail(f"missing table [{name}]")
            return {}
        if not isinstance(value, dict):
            raise self.fail(f"[{name}] must be a table")
        unknown = set(value) - keys
        if unknown:
            raise self.fail(f"[{name}] has an unknown key {sorted(unknown)[0]!r}")
        return value

    def string(self, table: Mapping[str, Any], where: str, key: str, *, limit: int = 4096) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(f"[{where}] {key} must be a non-empty string")
        if len(value) > limit or _CONTROL.search(value):
            raise self.fail(f"[{where}] {key} is too long or holds control characters")
        return value

    def integer(self, table: Mapping[str, Any], where: str, key: str, low: int, high: int) -> int:
        value = table.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.fail(f"[{where}] {key} must be an integer from {low} to {high}")
        return value

    def one_of(self, table: Mapping[str, Any], where: str, a: str, b: str) -> str:
        given = [k for k in (a, b) if k in table]
        if len(given) != 1:
            raise self.fail(f"[{where}] needs exactly one of {a} and {b}")
        return given[0]

    def file(self, name: str, where: str, limit: int) -> bytes:
        if self.base is None:
            raise self.fail(f"[{where}] names the file {name!r}, but a pinned policy holds every file inline")
        path = Path(name)
        return _read(path if path.is_absolute() else self.base / path, f"{where} file {name}", limit)

    # --- fields ------------------------------------------------------------------------------------------

    def url(self, table: Mapping[str, Any], where: str) -> str:
        url = self.string(table, where, "url", limit=2048)
        if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
            raise self.fail(f"[{where}] url must be an http:// or https:// URL without spaces, not {url!r}")
        return url.rstrip("/")

    def root(self, table: Mapping[str, Any]) -> bytes:
        which = self.one_of(table, "repository", "root", "root_base64")
        if which == "root":
            data = self.file(self.string(table, "repository", "root"), "repository root", MAX_ROOT_BYTES)
        else:
            try:
                data = base64.b64decode(self.string(table, "repository", which, limit=1 << 20), validate=True)
            except binascii.Error as e:
                raise self.fail("[repository] root_base64 is not base64") from e
        expected = self.string(table, "repository", "root_sha256", limit=64).lower()
        got = hashlib.sha256(data).hexdigest()
        if got != expected:
            raise self.fail(
                f"the root file's sha256 is {got}, not the root_sha256 {expected} the policy pins"
            )
        if self.base is None:
            # A pinned copy: its root was checked so when it was pinned, and is checked again by the TUF
            # client on every update (ngclient's bootstrap verifies the root by its own threshold).
            return data
        try:
            md = Metadata[Root].from_bytes(data)
            md.signed.verify_delegate("root", md.signed_bytes, md.signatures)
        except (RepositoryError, ValueError, TypeError, KeyError) as e:
            raise self.fail(f"the root is not a TUF root signed by its own threshold: {e}") from e
        return data

    def log_policy(self, table: Mapping[str, Any]) -> Policy:
        which = self.one_of(table, "log", "policy", "policy_text")
        if which == "policy":
            text = self.file(self.string(table, "log", "policy"), "log policy", MAX_FILE_BYTES)
        else:
            text = self.string(table, "log", "policy_text", limit=MAX_FILE_BYTES).encode()
        try:
            policy = Policy.from_bytes(text)
        except Error as e:
            raise self.fail(f"[log] the tlog-policy does not parse: {e}") from e
        if not policy.logs:
            raise self.fail("[log] the tlog-policy names no log key")
        if policy.quorum == "none":
            raise self.fail(
                "[log] the tlog-policy has no witness quorum; an endpoint needs witnesses to detect a split "
                "view or a frozen log"
            )
        return policy

    def keys(self, table: Mapping[str, Any], where: str, role: str) -> tuple[tuple[Key, ...], int]:
        listed = table.get("keys")
        if not isinstance(listed, list) or not listed or len(listed) > MAX_ITEMS:
            raise self.fail(f"[{where}] keys must be a list of 1 to {MAX_ITEMS} key files or key tables")
        distinct: dict[bytes, Key] = {}
        for item in listed:
            key = self.key(item, where, role)
            distinct.setdefault(key_identity(key), key)  # a key listed twice counts once
        return tuple(distinct.values()), self.integer(table, where, "threshold", 1, MAX_ITEMS)

    def key(self, item: Any, where: str, role: str) -> Key:
        if isinstance(item, str):
            try:
                obj: Any = jsonio.load_object(self.file(item, f"{where} key", MAX_FILE_BYTES), "key file")
            except Error as e:
                raise self.fail(f"[{where}] key {item!r}: {e}") from e
        else:
            obj = item
        if not isinstance(obj, dict):
            raise self.fail(f"[{where}] a key is a file name or a table with keytype, scheme and keyval")
        named = obj.get("role")
        if named is not None and named != role:
            raise self.fail(f"[{where}] a key file is for role {named!r}, not {role!r}")
        keytype, scheme, keyval = obj.get("keytype"), obj.get("scheme"), obj.get("keyval")
        if not isinstance(keytype, str) or not isinstance(scheme, str):
            raise self.fail(f"[{where}] a key needs string keytype and scheme")
        try:
            check_public_key(keytype, scheme, keyval)
        except Error as e:
            raise self.fail(f"[{where}] {e}") from e
        assert isinstance(keyval, dict)
        return SSlibKey(compute_default_keyid(keytype, scheme, keyval), keytype, scheme, dict(keyval))

    def builder_ids(self, table: Mapping[str, Any]) -> tuple[str, ...]:
        ids = table.get("ids")
        if not isinstance(ids, list) or not ids or len(ids) > MAX_ITEMS:
            raise self.fail(f"[builders] ids must be a list of 1 to {MAX_ITEMS} builder.id strings")
        out = tuple(self.string({"id": i}, "builders", "id", limit=2048) for i in ids)
        if len(set(out)) != len(out):
            raise self.fail("[builders] ids lists a builder twice")
        return out

    def follows(self, value: Any) -> tuple[Follow, ...]:
        if not isinstance(value, list) or not value or len(value) > MAX_ITEMS:
            raise self.fail(f"[[follow]] must be 1 to {MAX_ITEMS} tables, each a product or a database")
        out: list[Follow] = []
        for item in value:
            if not isinstance(item, dict):
                raise self.fail("[[follow]] entries must be tables")
            out.append(self.follow(item))
        if len({(f.kind, f.name, f.channel) for f in out}) != len(out):
            raise self.fail("[[follow]] lists one product channel or database twice")
        return tuple(out)

    def follow(self, item: Mapping[str, Any]) -> Follow:
        kind = self.one_of(item, "follow", "product", "database")
        allowed = {"product", "channel"} if kind == "product" else {"database"}
        if set(item) - allowed:
            raise self.fail(f"[[follow]] has an unknown key {sorted(set(item) - allowed)[0]!r}")
        try:
            if kind == "database":
                return Follow(
                    kind=DATABASE, name=check_segment(self.string(item, "follow", "database"), "database")
                )
            channel = self.string(item, "follow", "channel") if "channel" in item else DEFAULT_CHANNEL
            name = check_segment(self.string(item, "follow", "product"), "product")
            return Follow(kind=PRODUCT, name=name, channel=check_segment(channel, "channel"))
        except Error as e:
            raise self.fail(f"[[follow]] {e}") from e

    def age(self, table: Mapping[str, Any]) -> timedelta:
        hours = table.get("max_cosignature_age_hours", DEFAULT_AGE_HOURS)
        # NaN and infinity fail the range test too.
        if not isinstance(hours, int | float) or isinstance(hours, bool) or not 0 < hours <= MAX_AGE_HOURS:
            raise self.fail(
                f"[freshness] max_cosignature_age_hours must be a number above 0, at most {MAX_AGE_HOURS}"
            )
        return timedelta(hours=hours)

    def hook(self, table: Mapping[str, Any]) -> tuple[tuple[str, ...], int]:
        if "hook" not in table:
            if "hook_timeout_seconds" in table:
                raise self.fail("[install] hook_timeout_seconds without a hook")
            return (), DEFAULT_HOOK_TIMEOUT
        argv = table["hook"]
        if not isinstance(argv, list) or not argv or len(argv) > 64:
            raise self.fail("[install] hook must be a list of 1 to 64 strings: the program and its arguments")
        hook = tuple(self.string({"hook": a}, "install", "hook", limit=4096) for a in argv)
        if not hook[0].startswith("/"):
            raise self.fail(f"[install] hook must start with an absolute program path, not {hook[0]!r}")
        timeout = DEFAULT_HOOK_TIMEOUT
        if "hook_timeout_seconds" in table:
            timeout = self.integer(table, "install", "hook_timeout_seconds", 1, 86_400)
        return hook, timeout

    def pinned_sha(self, table: Mapping[str, Any]) -> str:
        value = self.string(table, "pinned", "sha256", limit=64)
        if len(value) != 64 or not set(value) <= set("0123456789abcdef"):
            raise self.fail("[pinned] sha256 is not 64 lowercase hex digits")
        return value


def distinct_keys(keys: Sequence[Key]) -> int:
    """How many distinct keys ``keys`` holds (by key material, as k-of-n counts them)."""
    return len({key_identity(k) for k in keys})
