"""The marking list (packaged and a user's own) and the marking corpus built from it."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
import yara_x
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.avdb.markings import Markings, decoy_text, load_markings, parse_markings
from overt.errors import FormatError

REQUIRED = [
    "TOP SECRET", "SECRET", "CONFIDENTIAL", "TS//SCI", "S//NF", "NOFORN", "ORCON", "REL TO", "EYES ONLY",
    "FOUO", "CUI", "CLASSIFIED", "СЕКРЕТНО", "СОВЕРШЕННО СЕКРЕТНО", "ОСОБОЙ ВАЖНОСТИ", "ДСП",
    "ДЛЯ СЛУЖЕБНОГО ПОЛЬЗОВАНИЯ", "VS-NfD", "VS-NUR FÜR DEN DIENSTGEBRAUCH", "VS-NUR FUER DEN DIENSTGEBRAUCH",
    "VS-VERTRAULICH", "GEHEIM", "STRENG GEHEIM", "SECRET DÉFENSE", "CONFIDENTIEL DÉFENSE",
    "DIFFUSION RESTREINTE", "绝密", "机密", "秘密", "NATO SECRET", "COSMIC TOP SECRET",
    "NOT RELEASABLE TO FOREIGN NATIONALS", "ORIGINATOR CONTROLLED",
]  # fmt: skip


@pytest.fixture(scope="module")
def packaged() -> Markings:
    return load_markings()


def forms_of(m: Markings, spelling: str) -> dict[str, bytes]:
    return {f.encoding: f.data for f in m.forms() if f.spelling == spelling}


def test_packaged_list_covers_the_issue(packaged: Markings) -> None:
    spellings = {s for m in packaged.entries for s in m.spellings()}
    assert [r for r in REQUIRED if r not in spellings] == []
    chinese = next(m for m in packaged.entries if m.text == "绝密")
    assert chinese.boundary == "none" and chinese.language == "zh"
    assert next(m for m in packaged.entries if m.text == "GEHEIM").boundary == "word"


def test_forms_cover_encodings_cases_and_separators(packaged: Markings) -> None:
    top = forms_of(packaged, "TOP SECRET")
    assert top["ASCII"] == b"TOP SECRET" and top["UTF-16LE"] == "TOP SECRET".encode("utf-16-le")
    assert top["UTF-16BE"] == "TOP SECRET".encode("utf-16-be")
    spellings = {f.spelling for f in packaged.forms()}
    assert {"Top Secret", "TOPSECRET", "TOP-SECRET", "TOP_SECRET", "TOP  SECRET", "TOP\nSECRET"} <= spellings
    assert "Secret" not in spellings  # an ordinary English word in Title Case; SECRET is the marking
    assert forms_of(packaged, "СЕКРЕТНО")["CP1251"] == "СЕКРЕТНО".encode("cp1251")
    assert forms_of(packaged, "绝密")["GB18030"] == "绝密".encode("gb18030")
    assert forms_of(packaged, "VS-NUR FÜR DEN DIENSTGEBRAUCH")[
        "CP1252"
    ] == "VS-NUR FÜR DEN DIENSTGEBRAUCH".encode("cp1252")
    assert "VS NfD" in spellings and "VSNfD" in spellings


def test_spans_map_offsets_back_to_forms(packaged: Markings) -> None:
    corpus = packaged.corpus()
    for s in corpus.spans[:2000]:
        chunk = corpus.data[s.start : s.end]
        if not s.label.startswith("base64"):
            want = s.form.data if not s.decoy else chunk
            assert chunk == want
            assert s.outer[0] < s.start and s.end < s.outer[1]
    assert all(a.end <= b.start for a, b in zip(corpus.spans, corpus.spans[1:], strict=False))
    assert list(corpus.starts) == sorted(corpus.starts)


def test_decoys_keep_the_shape_but_lose_the_marking() -> None:
    assert decoy_text("TOP SECRET") == "GBC FRPERG"
    assert decoy_text("ДСП") != "ДСП" and len(decoy_text("ДСП")) == 3
    assert decoy_text("绝密") != "绝密"
    assert decoy_text("TS//SCI")[2:4] == "//"


@pytest.mark.parametrize("offset", [0, 1, 2])
def test_base64_spans_are_what_the_base64_modifier_matches(packaged: Markings, offset: int) -> None:
    # yara-x's own base64 modifier must land on the span of the right offset: the corpus is written as MIME
    # mail carries a marking, and the span is the part of the text that the marking alone decides.
    corpus = packaged.corpus()
    rules = yara_x.compile('rule b { strings: $a = "TOP SECRET" base64 condition: $a }')
    matches = rules.scan(corpus.data).matching_rules[0].patterns[0].matches
    hit = {(m.offset, m.offset + m.length) for m in matches}
    label = f"base64 of ASCII at offset {offset}"
    span = next(
        s for s in corpus.spans if s.label == label and s.form.spelling == "TOP SECRET" and not s.decoy
    )
    assert (span.start, span.end) in hit
    core = corpus.data[span.start : span.end].decode()
    assert core in base64.b64encode(b"\n" * offset + b"TOP SECRET" + b"\n\n").decode()


def test_user_plain_text_list(tmp_path: Path) -> None:
    path = tmp_path / "codenames.txt"
    path.write_text("# our project codenames\n\nBLUE HARVEST\n  Projekt Adler  \n天网\nBLUE HARVEST\n")
    m = load_markings(path)
    assert [e.text for e in m.entries] == ["BLUE HARVEST", "Projekt Adler", "天网"]
    assert [e.boundary for e in m.entries] == ["word", "word", "none"]
    spellings = {f.spelling for f in m.forms()}
    assert {"BLUE HARVEST", "BLUE_HARVEST", "Blue Harvest", "PROJEKT ADLER"} <= spellings
    assert {f.encoding for f in m.forms() if f.spelling == "天网"} >= {"UTF-8", "UTF-16LE", "GB18030"}
    assert m.origin == str(path)


def test_user_toml_list(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        '[[marking]]\ntext = "KRONOS"\nlanguage = "en"\nclass = "codename"\nvariants = ["KR0N0S"]\n'
    )
    m = load_markings(path)
    assert m.entries[0].variants == ("KR0N0S",) and m.entries[0].klass == "codename"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.toml", b"[[marking]\ntext = 1", "not valid TOML"),
        (
            "a.toml",
            b'[[marking]]\ntext = "X1"\nlanguage = "en"\nclass = "c"\ncolour = "red"\n',
            "unknown keys colour",
        ),
        ("a.toml", b'[[marking]]\ntext = "XY"\nlanguage = "english"\nclass = "c"\n', "not a language code"),
        (
            "a.toml",
            b'[[marking]]\ntext = "XY"\nlanguage = "en"\nclass = "c"\nboundary = "some"\n',
            "boundary",
        ),
        ("a.toml", b'[[marking]]\ntext = "XY"\nlanguage = "en"\nclass = "c"\nvariants = "XZ"\n', "variants"),
        ("a.toml", b'[[marking]]\ntext = "XY"\nlanguage = "en"\n', "'class' must be a text"),
        ("a.toml", b'title = "x"\n', "expected only [[marking]] tables"),
        ("a.txt", b"# nothing but comments\n", "empty"),
        ("a.txt", b"OK LINE\nX\n", "a.txt:2: marking 'X': shorter than 2"),
        ("a.txt", b"\xff\xfeT\x00", "not UTF-8"),
        ("a.txt", b"BELL\x07\n", "control character"),
    ],
)
def test_bad_lists_are_format_errors(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FormatError) as e:
        load_markings(path)
    assert message in str(e.value) and str(path) in str(e.value)


def test_missing_file_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="cannot read the marking list"):
        load_markings(tmp_path / "absent.txt")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)), st.booleans())
def test_any_input_loads_or_is_a_format_error(data: bytes, toml: bool) -> None:
    try:
        m = parse_markings(data, origin="fuzz", toml=toml or None)
    except FormatError:
        return
    assert m.entries and all(f.data for f in m.forms())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "text": st.text(min_size=1, max_size=20),
                "language": st.sampled_from(["en", "ru", "zh", "xx", "E"]),
            },
            optional={
                "class": st.text(max_size=5),
                "variants": st.lists(st.text(max_size=8), max_size=3),
                "boundary": st.sampled_from(["word", "none", "x"]),
                "title": st.booleans(),
            },
        ),
        min_size=1,
        max_size=3,
    )
)
def test_toml_shaped_input_loads_or_is_a_format_error(entries: list[dict[str, object]]) -> None:
    import tomli_w

    data = tomli_w.dumps({"marking": entries}).encode()
    try:
        m = parse_markings(data, origin="fuzz")
    except FormatError:
        return
    assert len(m.entries) == len(entries)
    m.corpus()


def test_a_named_fifo_is_refused_at_once_but_a_pipe_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "codenames.fifo"
    os.mkfifo(fifo)
    with pytest.raises(FormatError, match="not a regular file"):
        load_markings(fifo)
    r, w = os.pipe()
    os.write(w, b"MARLIN\n")
    os.close(w)
    try:
        assert [m.text for m in load_markings(Path(f"/dev/fd/{r}")).entries] == ["MARLIN"]
    finally:
        os.close(r)
