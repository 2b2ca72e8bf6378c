"""C2SP tlog-policy: known logs, known witnesses, groups and the quorum rule.

Parses the line-based policy file and evaluates whether a set of cosigning witnesses satisfies the quorum.
It does not verify signatures itself: :func:`overt.tlog.client.verify_checkpoint` does, and passes the names
of the witnesses whose cosignatures verified.

A witness's name and URL are single words a policy line can carry (a URL is http or https): a policy that
cannot be read back is never built, so never written.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from overt.errors import ConfigError, FormatError
from overt.tlog.cosignature import CosignatureVerifier, parse_cosignature_vkey
from overt.tlog.note import Ed25519Verifier, parse_ed25519_vkey

MAX_ITEMS = 256
MAX_NAME = 256
MAX_URL = 2048


def _unprintable(text: str) -> bool:
    return any(c.isspace() or unicodedata.category(c) == "Cc" for c in text)


def check_witness_name(name: str) -> str:
    """A witness name: one word of a policy line, 1 to 256 characters without spaces or control characters."""
    if not name or len(name) > MAX_NAME or _unprintable(name):
        raise FormatError(
            f"witness name {name[:60]!r} must be 1 to {MAX_NAME} characters without spaces or control characters"
        )
    return name


def check_witness_url(url: str) -> str:
    """A witness URL: an http:// or https:// URL with a host, one word of a policy line."""
    if len(url) > MAX_URL or _unprintable(url):
        raise FormatError(f"witness URL {url[:80]!r} must be at most {MAX_URL} characters, without spaces")
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise FormatError(f"witness URL {url[:80]!r} is not a URL: {e}") from e
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FormatError(f"witness URL {url[:80]!r} is not an http:// or https:// URL with a host")
    return url


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyLog:
    verifier: Ed25519Verifier
    url: str | None = None

    @property
    def origin(self) -> str:
        return self.verifier.name


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyWitness:
    name: str
    verifier: CosignatureVerifier
    url: str | None = None

    def __post_init__(self) -> None:
        check_witness_name(self.name)
        if self.url is not None:
            check_witness_url(self.url)


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """A parsed policy. ``quorum`` is a witness or group name, or ``none``."""

    logs: tuple[PolicyLog, ...] = field(default=())
    witnesses: tuple[PolicyWitness, ...] = field(default=())
    groups: tuple[Group, ...] = field(default=())
    quorum: str = "none"

    def __post_init__(self) -> None:
        names = [w.name for w in self.witnesses] + [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise FormatError("policy defines a witness or group name twice")
        if "none" in names:
            raise FormatError("'none' is reserved and cannot name a witness or group")
        if self.quorum != "none" and self.quorum not in names:
            raise FormatError(f"policy quorum {self.quorum!r} names no witness or group")
        keys = [w.verifier.public_key for w in self.witnesses]
        if len(set(keys)) != len(keys):
            raise FormatError("policy lists the same witness key twice")
        log_keys = [lg.verifier.public_key for lg in self.logs]
        if len(set(log_keys)) != len(log_keys):
            raise FormatError("policy lists the same log key twice")

    @classmethod
    def from_bytes(cls, data: bytes) -> Policy:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError("policy is not UTF-8") from e
        logs: list[PolicyLog] = []
        witnesses: list[PolicyWitness] = []
        groups: list[Group] = []
        defined: set[str] = set()
        quorum: str | None = None
        for lineno, raw in enumerate(text.split("\n"), 1):
            if any(c < " " and c != "\t" for c in raw):
                raise FormatError(f"policy line {lineno}: control character")
            words = raw.replace("\t", " ").split()
            if not words or words[0].startswith("#"):
                continue
            where = f"policy line {lineno}"
            kind, args = words[0], words[1:]
            if kind == "log" and len(args) in (1, 2):
                logs.append(PolicyLog(verifier=parse_ed25519_vkey(args[0]), url=_url(args, 1)))
            elif kind == "witness" and len(args) in (2, 3):
                _fresh(args[0], defined, where)
                witnesses.append(
                    PolicyWitness(name=args[0], verifier=parse_cosignature_vkey(args[1]), url=_url(args, 2))
                )
                defined.add(args[0])
            elif kind == "group" and len(args) >= 3:
                name, k, members = args[0], args[1], tuple(args[2:])
                _fresh(name, defined, where)
                for m in members:
                    if m not in defined:
                        raise FormatError(f"{where}: group member {m!r} is not defined on an earlier line")
                if len(set(members)) != len(members):
                    raise FormatError(f"{where}: group {name!r} lists a member twice")
                threshold = _threshold(k, len(members), where)
                groups.append(Group(name=name, threshold=threshold, members=members))
                defined.add(name)
            elif kind == "quorum" and len(args) == 1:
                if quorum is not None:
                    raise FormatError(f"{where}: a policy has exactly one quorum line")
                if args[0] != "none" and args[0] not in defined:
                    raise FormatError(f"{where}: quorum {args[0]!r} is not defined on an earlier line")
                quorum = args[0]
            else:
                raise FormatError(f"{where}: cannot parse {raw.strip()[:80]!r}")
            if len(logs) + len(witnesses) + len(groups) > MAX_ITEMS:
                raise FormatError(f"policy defines more than {MAX_ITEMS} items")
        if quorum is None:
            raise FormatError("policy has no quorum line")
        return cls(logs=tuple(logs), witnesses=tuple(witnesses), groups=tuple(groups), quorum=quorum)

    def to_bytes(self) -> bytes:
        lines = [f"log {lg.verifier.vkey()}" + (f" {lg.url}" if lg.url else "") for lg in self.logs]
        lines += [
            f"witness {w.name} {w.verifier.vkey()}" + (f" {w.url}" if w.url else "") for w in self.witnesses
        ]
        for g in self.groups:
            lines.append(f"group {g.name} {g.threshold} {' '.join(g.members)}")
        lines.append(f"quorum {self.quorum}")
        return ("\n".join(lines) + "\n").encode()

    def satisfied_by(self, cosigned: set[str] | frozenset[str]) -> bool:
        """Whether witnesses named in ``cosigned`` meet the quorum."""
        if self.quorum == "none":
            return True
        groups = {g.name: g for g in self.groups}

        def witnessed(name: str) -> bool:
            g = groups.get(name)
            if g is None:
                return name in cosigned
            return sum(witnessed(m) for m in g.members) >= g.threshold

        return witnessed(self.quorum)

    def witness_verifiers(self) -> dict[str, CosignatureVerifier]:
        return {w.name: w.verifier for w in self.witnesses}

    def revised(
        self,
        *,
        witnesses: Sequence[PolicyWitness] = (),
        remove: Sequence[str] = (),
        quorum: str | None = None,
    ) -> Policy:
        """This policy without the witnesses named in ``remove``, with ``witnesses`` added (each replacing one
        of its name) and, if ``quorum`` is given (``none``, ``all``, ``any`` or k), that quorum over all its
        witnesses. Without ``quorum`` the rule is kept over the new set (:meth:`kept_quorum`): k stays k, and
        a quorum of all the witnesses is never quietly read as fewer."""
        if not witnesses and not remove and quorum is None:
            return self
        names = [w.name for w in self.witnesses]
        unknown = [n for n in remove if n not in names]
        if unknown:
            listed = ", ".join(names) or "none"
            raise ConfigError(f"the policy has no witness {unknown[0]!r} to remove (its witnesses: {listed})")
        merged = [w for w in self.witnesses if w.name not in remove]
        for w in witnesses:  # in order: a name given twice is the last one given
            merged = [m for m in merged if m.name != w.name] + [w]
        new_names = tuple(w.name for w in merged)
        rule = quorum if quorum is not None else self.kept_quorum(new_names)
        groups, name = quorum_groups(new_names, rule)
        return Policy(logs=self.logs, witnesses=tuple(merged), groups=groups, quorum=name)

    def kept_quorum(self, names: Sequence[str]) -> str:
        """This policy's quorum rule (none, all or k) for the witnesses ``names``, as the operator set it.

        A quorum of k of more than k witnesses stays k. A quorum of all its witnesses was set as all or as
        their number (the policy does not say which): it stays all when witnesses are only removed, and is
        refused when one is added, since the two differ then and "all" must never quietly become fewer.
        """
        rule = quorum_of(self)
        group = next((g for g in self.groups if g.name == self.quorum), None)
        if group is None or set(names) == set(group.members):
            return rule
        if not names:
            raise ConfigError(
                f"no witness would be left for the quorum ({group.threshold} of {', '.join(group.members)}): "
                "give --quorum none to publish without witnesses"
            )
        k, members = group.threshold, group.members
        if k < len(members):
            return rule
        if set(names) <= set(members):
            return "all"
        readings = "all of them, any or 1" if len(members) == 1 else f"all of them, or {k}"
        raise ConfigError(
            f"the quorum is {k} of the {len(members)} witnesses {', '.join(members)} ({readings}), which differ "
            f"for the new set of {len(names)}: say which with --quorum"
        )

    def to_dict(self) -> dict[str, object]:
        """The policy's parts as data, with its tlog-policy text (what a verifier pins) beside them."""
        return {
            "logs": [{"origin": lg.origin, "vkey": lg.verifier.vkey(), "url": lg.url} for lg in self.logs],
            "witnesses": [{"name": w.name, "vkey": w.verifier.vkey(), "url": w.url} for w in self.witnesses],
            "groups": [
                {"name": g.name, "threshold": g.threshold, "members": list(g.members)} for g in self.groups
            ],
            "quorum": self.quorum,
            "policy": self.to_bytes().decode(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyRevision:
    """A log's policy as ``overt log policy`` leaves it: the policy, whether it was changed, and its file."""

    policy: Policy
    changed: bool
    path: Path

    def to_dict(self) -> dict[str, object]:
        return {**self.policy.to_dict(), "changed": self.changed, "path": str(self.path)}


def _fresh(name: str, defined: set[str], where: str) -> None:
    if name == "none":
        raise FormatError(f"{where}: 'none' is reserved")
    if name in defined:
        raise FormatError(f"{where}: {name!r} is already defined")


def _threshold(k: str, n: int, where: str) -> int:
    if k == "all":
        return n
    if k == "any":
        return 1
    if not k.isascii() or not k.isdigit() or not 1 <= int(k) <= n:
        raise FormatError(f"{where}: group threshold {k!r} must be all, any or 1..{n}")
    return int(k)


def _url(args: list[str], i: int) -> str | None:
    return args[i] if len(args) > i else None


def quorum_of(pol: Policy) -> str:
    """The quorum of ``pol`` as ``overt log policy --quorum`` spells it: none, all or k."""
    for g in pol.groups:
        if g.name == pol.quorum:
            return str(g.threshold)
    return "none" if pol.quorum == "none" else "all"


def quorum_groups(names: tuple[str, ...], quorum: str) -> tuple[tuple[Group, ...], str]:
    """Turn 'none' / 'all' / 'any' / 'k' over ``names`` into policy groups and a quorum name."""
    if quorum == "none":
        return (), "none"
    if not names:
        raise ConfigError(
            f"a quorum of {quorum} needs witnesses: add them first (overt log policy --add-witness)"
        )
    k = {"all": len(names), "any": 1}.get(quorum)
    if k is None:
        if not quorum.isdigit() or not 1 <= int(quorum) <= len(names):
            raise ConfigError(f"the quorum must be none, all, any or 1..{len(names)}, not {quorum!r}")
        k = int(quorum)
    return (Group(name="witnesses", threshold=k, members=names),), "witnesses"
