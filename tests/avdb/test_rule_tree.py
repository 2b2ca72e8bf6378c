"""What a rule tree says about itself: its audit settings (``overt-audit.toml``), and rule names unique across
its files."""

from __future__ import annotations

import pytest

from overt.avdb.rules import TreeSettings, load_rules
from overt.errors import FormatError
from overt.source.snapshot import FILE, SnapshotFile
from tests.avdb.samples import EICAR_RULE, rule, ruleset

OTHER = rule("EICAR_Test_File", "OVT-0002", '    $x = "another-marker"', "$x")


def files(tree: dict[str, str]) -> list[SnapshotFile]:
    return [SnapshotFile(path=p, kind=FILE, data=t.encode()) for p, t in tree.items()]


def test_notices_are_advisory_unless_the_tree_says_they_block() -> None:
    assert ruleset({"yara/a.yar": EICAR_RULE}).settings == TreeSettings(notices_block=False)
    blocking = {"yara/a.yar": EICAR_RULE, "overt-audit.toml": "[notices]\nblocking = true\n"}
    assert ruleset(blocking).settings.notices_block is True
    assert ruleset(blocking, strict=True).settings.notices_block is True
    # Only the file at the tree's root is the tree's setting.
    nested = {"yara/a.yar": EICAR_RULE, "yara/overt-audit.toml": "[notices]\nblocking = true\n"}
    assert ruleset(nested).settings.notices_block is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[notices\nblocking = true\n", r"^overt-audit.toml is not valid TOML: "),
        (
            '[notices]\nblocking = "yes"\n',
            r"^overt-audit.toml: notices.blocking must be true or false, not 'yes'$",
        ),
        (
            "[notices]\nblock = true\n",
            r"^overt-audit.toml: unknown setting notices.block; \[notices\] holds blocking$",
        ),
        (
            "[checks]\nx = 1\n",
            r"^overt-audit.toml: unknown setting 'checks'; the known tables are \[notices\]$",
        ),
        ("notices = true\n", r"^overt-audit.toml: unknown setting 'notices'"),
    ],
)
def test_a_bad_settings_file_is_a_format_error_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        load_rules(files({"yara/a.yar": EICAR_RULE, "overt-audit.toml": text}), strict=False)


def test_a_rule_name_used_in_two_files_is_a_duplicate_name_problem() -> None:
    tree = {"yara/a.yar": EICAR_RULE, "yara/b.yar": OTHER}
    rules = ruleset(tree)
    (problem,) = [p for p in rules.problems if p.check == "duplicate-name"]
    assert (problem.file, problem.rule) == ("yara/b.yar", "EICAR_Test_File")
    assert problem.message == "rule name EICAR_Test_File is already defined in yara/a.yar (line 1)"
    with pytest.raises(FormatError, match=r"^yara/b.yar: rule EICAR_Test_File: rule name EICAR_Test_File is"):
        ruleset(tree, strict=True)
    assert not [p for p in ruleset({"yara/a.yar": EICAR_RULE}).problems if p.check == "duplicate-name"]
