"""The customer's trust policy: a valid one parses and pins self-contained, every malformed field is a
ConfigError naming it, and no input (fuzzed with Hypothesis) gives any other exception."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root

from overt.distribute.agentdir import AgentLayout, load_pinned, pin_policy
from overt.distribute.trust import DATABASE, PRODUCT, TrustPolicy
from overt.errors import ConfigError
from overt.tlog.cosignature import CosignatureSigner
from overt.tlog.note import Ed25519Signer
from overt.tlog.policy import Policy, PolicyLog, PolicyWitness

# Test-only keys, fixed so the fixtures are reproducible.
LOG = Ed25519Signer.create("trust.overt.example/log", b"\x41" * 32)
WITNESS = CosignatureSigner.create("w.trust.overt.example", b"\x42" * 32)


@dataclass
class Files:
    """A customer's directory: the policy's fields as data, and the files they name."""

    directory: Path
    doc: dict[str, Any]
    auditor: dict[str, Any]  # an auditor key as a key table

    def write(self, doc: dict[str, Any] | None = None) -> Path:
        path = self.directory / "policy.toml"
        path.write_text(tomli_w.dumps(doc if doc is not None else self.doc))
        return path

    def parse(self, doc: dict[str, Any]) -> TrustPolicy:
        return TrustPolicy.from_file(self.write(doc))


def _key() -> dict[str, Any]:
    return CryptoSigner.generate_ed25519().public_key.to_dict()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Files]:
    d = tmp_path_factory.mktemp("customer")
    signer = CryptoSigner.generate_ed25519()
    root = Root(consistent_snapshot=True)
    for role in ("root", "targets", "snapshot", "timestamp"):
        root.add_key(signer.public_key, role)
    md = Metadata(root)
    md.sign(signer)
    (d / "root.json").write_bytes(md.to_bytes())
    policy = Policy(
        logs=(PolicyLog(verifier=LOG.verifier()),),
        witnesses=(PolicyWitness(name="w", verifier=WITNESS.verifier()),),
        quorum="w",
    )
    (d / "log.policy").write_bytes(policy.to_bytes())
    auditors = [_key(), _key()]
    for i, k in enumerate(auditors):
        (d / f"auditor-{i}.json").write_text(json.dumps({**k, "role": "auditor"}))
    (d / "builder.json").write_text(json.dumps(_key()))
    doc = {
        "repository": {
            "url": "https://updates.example/tuf/",
            "root": "root.json",
            "root_sha256": hashlib.sha256((d / "root.json").read_bytes()).hexdigest(),
        },
        "log": {"url": "https://updates.example/log", "policy": "log.policy"},
        "auditors": {"keys": ["auditor-0.json", "auditor-1.json"], "threshold": 2},
        "builders": {"ids": ["https://builder.example/v1"], "keys": ["builder.json"], "threshold": 1},
        "freshness": {"max_cosignature_age_hours": 12},
        "follow": [{"product": "demo", "channel": "beta"}, {"product": "tool"}, {"database": "main"}],
        "install": {"hook": ["/bin/true", "--quiet"], "hook_timeout_seconds": 30},
    }
    yield Files(directory=d, doc=doc, auditor=auditors[0])


def test_a_policy_parses_and_its_pinned_copy_is_self_contained(files: Files, tmp_path: Path) -> None:
    source = files.write()
    policy = TrustPolicy.from_file(source)
    assert policy.repository_url == "https://updates.example/tuf"  # no trailing slash
    assert policy.root == (files.directory / "root.json").read_bytes()
    assert policy.log_policy.quorum == "w" and policy.auditor_threshold == 2 and len(policy.auditor_keys) == 2
    assert [(f.kind, f.name, f.channel) for f in policy.follows] == [
        (PRODUCT, "demo", "beta"),
        (PRODUCT, "tool", "stable"),
        (DATABASE, "main", ""),
    ]
    assert policy.hook == ("/bin/true", "--quiet") and policy.hook_timeout == 30
    assert policy.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    pinned = policy.to_pinned_bytes()
    again = TrustPolicy.from_toml(pinned, source="pinned", base=None)
    assert again == policy  # the same roots, the same origin and digest
    assert again.to_pinned_bytes() == pinned
    # Pinned into an agent directory, later changes to the customer's files change nothing.
    layout = AgentLayout(tmp_path / "agent")
    assert pin_policy(layout, source).replaced is None
    (files.directory / "log.policy").write_bytes(b"garbage")
    try:
        assert load_pinned(layout) == policy
    finally:
        (files.directory / "log.policy").write_bytes(policy.log_policy.to_bytes())
    # Pinning another policy says which one it replaced.
    other = copy.deepcopy(files.doc)
    other["freshness"]["max_cosignature_age_hours"] = 6
    assert pin_policy(layout, files.write(other)).replaced == policy.sha256
    files.write()


def test_a_key_listed_twice_counts_once_and_k_must_fit_the_distinct_keys(files: Files) -> None:
    doc = copy.deepcopy(files.doc)
    doc["auditors"] = {"keys": ["auditor-0.json", files.auditor, "auditor-1.json"], "threshold": 2}
    assert len(files.parse(doc).auditor_keys) == 2
    doc["auditors"]["threshold"] = 3
    with pytest.raises(ConfigError, match=r"\[auditors\] threshold 3 must be between 1 and the 2 distinct"):
        files.parse(doc)


def _with(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node: Any = out
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


_DELETE = object()
BAD = [
    ("repository", _DELETE, r"missing table \[repository\]"),
    ("repository.url", "ftp://x", r"\[repository\] url must be an http"),
    ("repository.url", "", r"\[repository\] url must be a non-empty string"),
    ("repository.root_sha256", "00" * 32, "root file's sha256 is .*, not the root_sha256"),
    ("repository.root", "missing.json", "repository root file missing.json: cannot read .*missing.json"),
    ("repository.root_base64", "AAAA", "needs exactly one of root and root_base64"),
    ("repository.extra", 1, r"\[repository\] has an unknown key 'extra'"),
    ("log.policy", "root.json", r"\[log\] the tlog-policy does not parse"),
    ("log.policy_text", "log x\n", "needs exactly one of policy and policy_text"),
    ("auditors.keys", [], r"\[auditors\] keys must be a list of 1"),
    (
        "auditors.keys",
        ["builder.json", {"keytype": "rsa", "scheme": "x", "keyval": {}}],
        "unsupported key type",
    ),
    (
        "auditors.keys",
        [{"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "zz"}}],
        "64 lowercase hex",
    ),
    ("auditors.keys", ["log.policy"], r"\[auditors\] key 'log.policy': key file is not valid JSON"),
    ("auditors.threshold", 0, r"\[auditors\] threshold must be an integer from 1"),
    ("auditors.threshold", True, r"\[auditors\] threshold must be an integer"),
    ("builders.ids", [], r"\[builders\] ids must be a list"),
    ("builders.ids", ["a", "a"], "lists a builder twice"),
    ("builders.keys", ["auditor-0.json"], "a key file is for role 'auditor', not 'builder'"),
    ("freshness.max_cosignature_age_hours", 0, "max_cosignature_age_hours must be a number above 0"),
    ("freshness.max_cosignature_age_hours", float("nan"), "max_cosignature_age_hours must be a number"),
    ("follow", [], r"\[\[follow\]\] must be 1 to"),
    ("follow.0", {"product": "a/b"}, "product 'a/b' must be"),
    ("follow.0", {"product": "demo", "database": "main"}, "needs exactly one of product and database"),
    ("follow.0", {"database": "main", "channel": "x"}, "unknown key 'channel'"),
    ("follow.1", {"product": "demo", "channel": "beta"}, "lists one product channel or database twice"),
    ("install.hook", [], r"\[install\] hook must be a list"),
    ("install.hook", ["reload-it"], "hook must start with an absolute program path, not 'reload-it'"),
    ("install.hook_timeout_seconds", 0, "hook_timeout_seconds must be an integer from 1"),
    ("surprise", {"x": 1}, "unknown table or key 'surprise'"),
]


@pytest.mark.parametrize(
    ("path", "value", "match"),
    BAD,
    ids=[(f"{p}=<deleted>" if v is _DELETE else f"{p}={v!r}")[:60] for p, v, _ in BAD],
)
def test_each_malformed_field_is_a_config_error_naming_it(
    files: Files, path: str, value: Any, match: str
) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        files.parse(_with(files.doc, path, value))
    assert str(e.value).startswith(f"trust policy {files.directory / 'policy.toml'}: ")
    files.write()


def test_a_log_policy_without_witnesses_and_a_pinned_copy_naming_files_are_refused(files: Files) -> None:
    bare = Policy(logs=(PolicyLog(verifier=LOG.verifier()),), quorum="none").to_bytes().decode()
    doc = _with(_with(files.doc, "log.policy", _DELETE), "log.policy_text", bare)
    with pytest.raises(ConfigError, match="has no witness quorum"):
        files.parse(doc)
    with pytest.raises(ConfigError, match="a pinned policy holds every file inline"):
        TrustPolicy.from_toml(files.write().read_bytes(), source="pinned", base=None)
    for data, match in ((b"\xff", "not UTF-8"), (b"[repository", "not TOML")):
        with pytest.raises(ConfigError, match=match):
            TrustPolicy.from_toml(data, source="x", base=files.directory)
    files.write()


# Anything TOML can hold, in any field: the parser answers with a policy or a ConfigError, never a traceback.
toml_values = st.recursive(
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "repository.url",
    "repository.root",
    "repository.root_sha256",
    "log.url",
    "log.policy",
    "auditors.keys",
    "auditors.threshold",
    "builders.ids",
    "builders.keys",
    "builders.threshold",
    "freshness.max_cosignature_age_hours",
    "follow",
    "follow.0",
    "install.hook",
    "install.hook_timeout_seconds",
    "repository",
    "log",
    "follow.2",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(FIELDS), value=toml_values)
def test_fuzzed_fields_parse_or_are_config_errors(files: Files, path: str, value: Any) -> None:
    doc = _with(files.doc, path, value)
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):
        return  # not expressible in TOML
    try:
        TrustPolicy.from_toml(text.encode(), source="fuzz", base=files.directory)
    except ConfigError as e:
        assert str(e).startswith("trust policy fuzz: ")


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_fuzzed_bytes_are_config_errors(data: bytes) -> None:
    with pytest.raises(ConfigError):
        TrustPolicy.from_toml(data, source="fuzz", base=None)


def test_a_pinned_copy_holds_its_root_as_a_literal_string(files: Files) -> None:
    """The root's base64 is written as a TOML literal string (read with one search, not a loop over each
    character, on every update); it reads back as the same root."""
    policy = TrustPolicy.from_file(files.write())
    pinned = policy.to_pinned_bytes()
    literal = f"root_base64 = '{base64.b64encode(policy.root).decode()}'\n".encode()
    assert pinned.count(literal) == 1
    assert TrustPolicy.from_toml(pinned, source="pinned", base=None).root == policy.root
