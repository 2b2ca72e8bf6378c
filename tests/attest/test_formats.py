"""Statement, ResourceDescriptor, SLSA Provenance and VSA: validation, round trips both ways, fuzzing."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.attest.provenance import BuildDefinition, Builder, BuildMetadata, Provenance, RunDetails
from overt.attest.statement import ResourceDescriptor, Statement, check_timestamp
from overt.attest.vsa import VerificationSummary, VsaVerifier
from overt.errors import FormatError
from tests.samples import provenance, provenance_statement, vsa, vsa_statement

hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
texts = st.text(max_size=12)
json_leaf = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | texts
json_values = st.recursive(
    json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(texts, c, max_size=3), max_leaves=8
)
json_objects = st.dictionaries(texts, json_values, max_size=3)
timestamps = st.datetimes(min_value=datetime(1970, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
)

descriptors = st.builds(
    ResourceDescriptor,
    name=texts,
    uri=st.just("https://example.com/x") | st.just(""),
    digest=st.dictionaries(st.just("sha256"), hex64, min_size=1, max_size=1),
    content=st.binary(max_size=8),
    download_location=texts,
    media_type=texts,
    annotations=json_objects,
)
statements = st.builds(
    Statement,
    subject=st.lists(descriptors, min_size=1, max_size=3).map(tuple),
    predicate_type=st.text(min_size=1, max_size=30),
    predicate=json_objects,
)
provenances = st.builds(
    Provenance,
    build_definition=st.builds(
        BuildDefinition,
        build_type=st.text(min_size=1, max_size=20),
        external_parameters=json_objects,
        internal_parameters=json_objects,
        resolved_dependencies=st.lists(descriptors, max_size=2).map(tuple),
    ),
    run_details=st.builds(
        RunDetails,
        builder=st.builds(
            Builder,
            id=st.text(min_size=1, max_size=20),
            version=st.dictionaries(texts, texts, max_size=2),
            builder_dependencies=st.lists(descriptors, max_size=2).map(tuple),
        ),
        metadata=st.builds(
            BuildMetadata, invocation_id=texts, started_on=timestamps | st.just(""), finished_on=timestamps
        ),
        byproducts=st.lists(descriptors, max_size=2).map(tuple),
    ),
)
summaries = st.builds(
    VerificationSummary,
    verifier=st.builds(
        VsaVerifier, id=st.text(min_size=1, max_size=10), version=st.dictionaries(texts, texts, max_size=2)
    ),
    time_verified=timestamps,
    resource_uri=st.text(min_size=1, max_size=10),
    policy=descriptors,
    verification_result=st.sampled_from(["PASSED", "FAILED"]),
    verified_levels=st.lists(st.text(min_size=1, max_size=10), max_size=3).map(tuple),
    input_attestations=st.lists(descriptors, max_size=2).map(tuple),
    dependency_levels=st.dictionaries(st.text(min_size=1, max_size=5), st.integers(0, 1000), max_size=2),
    slsa_version=st.sampled_from(["", "1.0", "1.1"]),
)


@given(statements)
def test_statement_round_trips(s):
    assert Statement.from_bytes(s.to_bytes()) == s
    assert (
        Statement.from_bytes(Statement.from_dict(json.loads(s.to_bytes())).to_bytes()).to_bytes()
        == s.to_bytes()
    )


@given(provenances)
def test_provenance_round_trips(p):
    assert Provenance.from_bytes(p.to_bytes()) == p
    assert Provenance.from_dict(json.loads(p.to_bytes())).to_bytes() == p.to_bytes()


@given(summaries)
def test_vsa_round_trips(v):
    assert VerificationSummary.from_bytes(v.to_bytes()) == v
    assert VerificationSummary.from_dict(json.loads(v.to_bytes())).to_bytes() == v.to_bytes()


def test_samples_through_statements():
    assert Provenance.from_statement(Statement.from_bytes(provenance_statement().to_bytes())) == provenance()
    assert VerificationSummary.from_statement(Statement.from_bytes(vsa_statement().to_bytes())) == vsa()
    with pytest.raises(FormatError):
        Provenance.from_statement(vsa_statement())
    with pytest.raises(FormatError):
        VerificationSummary.from_statement(provenance_statement())


GOOD = provenance_statement().to_dict()


def _with(path: str, value: object) -> bytes:
    doc = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("_type", "https://in-toto.io/Statement/v0.1", "expected"),
        ("_type", KeyError, "_type"),
        ("subject", [], "no subject"),
        ("subject", KeyError, "subject"),
        ("subject.0.digest", {}, "none of uri, digest"),
        ("subject", [{"uri": "https://example.com/x"}], "no digest"),
        ("subject.0.digest", {"sha256": "ABC"}, "lowercase hex"),
        ("subject.0.digest", {"sha256": "a" * 63}, "lowercase hex"),
        ("subject.0.digest", {"sha256": 5}, "string"),
        ("subject.0.digest", {"": "x"}, "empty digest algorithm"),
        ("predicateType", "", "empty"),
        ("predicate", [], "object"),
        ("predicate.buildDefinition", KeyError, None),
        ("predicate.runDetails.builder.id", "", None),
        ("predicate.runDetails.metadata.startedOn", "yesterday", None),
    ],
)
def test_malformed_statements(path, value, message):
    data = _with(path, value)
    with pytest.raises(FormatError, match=message):
        Provenance.from_statement(Statement.from_bytes(data))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("verificationResult", "MAYBE"),
        ("verifiedLevels", "SLSA_BUILD_LEVEL_3"),
        ("verifiedLevels", [""]),
        ("timeVerified", "2026-13-45T99:00:00Z"),
        ("resourceUri", ""),
        ("policy", {}),
        ("dependencyLevels", {"SLSA_BUILD_LEVEL_3": -1}),
        ("dependencyLevels", {"SLSA_BUILD_LEVEL_3": True}),
        ("slsaVersion", "v1"),
    ],
)
def test_malformed_vsas(field, value):
    d = vsa().to_dict()
    d[field] = value
    with pytest.raises(FormatError):
        VerificationSummary.from_dict(d)


def test_timestamps():
    assert check_timestamp("2026-11-28T10:00:00.123+01:00", "t")
    for bad in ("2026-11-28", "2026-11-28 10:00:00Z", "2026-02-30T10:00:00Z", "2026-11-28T10:00:00"):
        with pytest.raises(FormatError):
            check_timestamp(bad, "t")


def test_gitcommit_accepts_sha1_and_sha256_lengths_and_custom_algorithms_anything():
    ResourceDescriptor(digest={"gitCommit": "a" * 40})
    ResourceDescriptor(digest={"gitCommit": "a" * 64})
    ResourceDescriptor(digest={"myAlgo": "whatever"})
    with pytest.raises(FormatError):
        ResourceDescriptor(digest={"gitCommit": "a" * 50})
    with pytest.raises(FormatError):
        ResourceDescriptor(name="nothing")


@pytest.mark.parametrize(
    "parse", [Statement.from_bytes, Provenance.from_bytes, VerificationSummary.from_bytes]
)
@given(data=st.binary(max_size=200))
def test_fuzz_bytes_only_format_errors(parse, data):
    with contextlib.suppress(FormatError):
        parse(data)


keys = st.sampled_from(
    [
        "_type",
        "subject",
        "digest",
        "sha256",
        "predicateType",
        "predicate",
        "buildDefinition",
        "runDetails",
        "builder",
        "id",
        "buildType",
        "externalParameters",
        "verifier",
        "timeVerified",
        "policy",
        "uri",
        "verificationResult",
        "verifiedLevels",
        "resourceUri",
        "name",
        "content",
    ]
)
json_shaped = st.recursive(
    json_leaf | st.just("https://in-toto.io/Statement/v1") | hex64,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(keys, c, max_size=5),
    max_leaves=20,
)


@pytest.mark.parametrize(
    "parse", [Statement.from_bytes, Provenance.from_bytes, VerificationSummary.from_bytes]
)
@given(obj=json_shaped)
def test_fuzz_json_only_format_errors(parse, obj):
    with contextlib.suppress(FormatError):
        parse(json.dumps(obj).encode())
