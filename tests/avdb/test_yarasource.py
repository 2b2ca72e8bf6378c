"""The YARA lexer: every rule's exact text and parts, whatever plyara would make of the file."""

from __future__ import annotations

import contextlib

import yara_x
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.avdb.yarasource import HEX, REGEX, TEXT, condition_tokens, rule_text, split_rules
from overt.errors import FormatError

SOURCE = r"""import "pe"
// a } in a comment
private global rule A : t1 t2 {
  meta:
    id = "X-1"
    n = -3
    b = true
  strings:
    $a = "T\x41P \" }" wide nocase
    $ = { 41 [1-2] ( 42 | 43 ) // } a comment
      44 }
    $r = /a\/b}[0-9]+/is private
    $x = "qqq" base64("!@#$%^&*(){}[].,|ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu")
  condition:
    any of them and filesize < 4KB and pe.number_of_sections > 0 and "x}" matches /}/ // }
}
rule B { condition: A }
"""


def test_rules_split_into_their_parts_with_exact_text():
    imports, includes, rules = split_rules(SOURCE)
    assert imports == ("pe",) and includes == ()
    a, b = rules
    assert (a.name, a.modifiers, a.tags) == ("A", ("private", "global"), ("t1", "t2"))
    assert a.meta == (("id", "X-1"), ("n", -3), ("b", True))
    assert [(p.name, p.kind) for p in a.patterns] == [("$a", TEXT), ("$#2", HEX), ("$r", REGEX), ("$x", TEXT)]
    assert a.patterns[0].text_bytes() == b'TAP " }' and a.patterns[0].modifier_names() == ("wide", "nocase")
    assert a.patterns[2].modifier_names() == ("private",)
    assert a.patterns[3].text_bytes() == b"qqq" and a.patterns[3].modifier_names() == ("base64",)
    assert a.condition.endswith("// }") and SOURCE[a.start : a.end] == a.text
    assert a.text.startswith("private global rule A") and a.text.endswith("}")
    assert (b.name, b.condition, b.line) == ("B", "A", 17)
    assert "filesize" in condition_tokens(a.condition) and "}" not in condition_tokens(a.condition)


def test_rule_text_rebuilds_with_another_condition_and_without_modifiers():
    _, _, (a, _) = split_rules(SOURCE)
    rebuilt = rule_text(a, condition="any of them", drop=("global", "private"))
    assert rebuilt.startswith("rule A : t1 t2 {") and rebuilt.rstrip().endswith("any of them\n}")
    yara_x.compile('import "pe"\n' + rebuilt)


def test_crlf_is_kept_in_each_rules_text():
    text = 'rule C {\r\n  strings:\r\n    $a = "x"\r\n  condition:\r\n    $a\r\n}\r\nrule D { condition: true }\r\n'
    _, _, (c, d) = split_rules(text)
    assert c.text == 'rule C {\r\n  strings:\r\n    $a = "x"\r\n  condition:\r\n    $a\r\n}'
    assert c.condition == "$a" and (d.line, d.condition) == (7, "true")


def test_non_ascii_regex_that_plyara_cannot_parse_is_lexed():
    text = "rule R {\n  strings:\n    $a = /СЕКРЕТНО\\s+(ДСП)?/ wide\n  condition:\n    $a\n}\n"
    yara_x.compile(text)
    (rule,) = split_rules(text)[2]
    assert rule.patterns[0].value == "/СЕКРЕТНО\\s+(ДСП)?/"


def test_unlexable_text_names_the_line():
    for bad in ('rule A {\n  condition:\n    "x\n}', "rule A {\n  strings: $a = \n}", "rule {", "nonsense"):
        try:
            split_rules(bad, where="f.yar")
        except FormatError as e:
            assert str(e).startswith("f.yar: line ")
        else:
            raise AssertionError(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('rule A{}:$="/\\ \n*(|)?[]-x0conditionstrgmeta')), max_size=80))
def test_arbitrary_text_either_lexes_or_raises_a_format_error(text):
    with contextlib.suppress(FormatError):
        split_rules(text)
