"""Per-rule checks: document-only, targeting, self-name and collection, each with rules that must be flagged and
benign look-alikes of real malware rules that must not be."""

from __future__ import annotations

import pytest

from overt.avdb.checks import check_rule, global_rules
from overt.avdb.findings import ADVISORY, BLOCKING, Finding
from tests.avdb.samples import rule, ruleset


def findings(text: str) -> list[Finding]:
    (only,) = ruleset({"r.yar": text}).yara
    return check_rule(only)


def checks(text: str) -> set[str]:
    return {f.check for f in findings(text)}


def tagged(text: str, name: str, tags: str) -> str:
    return text.replace(f"rule {name} {{", f"rule {name} : {tags} {{", 1)


WORDS = '    $w1 = "annual budget" nocase\n    $w2 = "negotiating position" nocase'

DOCUMENT_ONLY = [
    ("uint32be", WORDS, "uint32be(0) == 0x25504446 and any of ($w*)"),
    ("uint32 le", WORDS, "uint32(0) == 0x46445025 and all of them"),
    ("decimal", WORDS, "(uint32(0) == 3759263696 or uint32(0) == 1178882085) and all of them"),
    ("uint16 pair", WORDS, "uint16(0) == 0x5025 and uint16(2) == 0x4644 and $w1"),
    ("uint8 bytes", WORDS, "uint8(0) == 0x7B and uint8(1) == 0x5C and uint8(2) == 0x72 and $w1"),
    ("hex no spaces", "    $pdf = { 255044462D }\n" + WORDS, "$pdf at 0 and any of ($w*)"),
    ("hex wildcard", "    $ole = { D0 CF 11 ?? A1 B1 1A E1 }\n" + WORDS, "$ole at 0 and any of ($w*)"),
    ("rtf text", '    $rtf = "{\\\\rtf1"\n' + WORDS, "$rtf at 0 and any of ($w*)"),
    ("ooxml part", '    $ct = "word/document.xml"\n' + WORDS, "uint32(0) == 0x04034b50 and $ct and $w1"),
    ("regex magic", "    $pdf = /%PDF-1\\.[0-7]/\n" + WORDS, "$pdf in (0..1024) and $w2"),
    ("hex-encoded words", "    $w = { 62 75 64 67 65 74 20 70 6C 61 6E }", "uint32(0) == 0xE011CFD0 and $w"),
    ("format and size", "", "uint32be(0) == 0xD0CF11E0 and filesize > 200KB and filesize < 3MB"),
    ("format and size, pdf", "", "uint32(0) == 0x46445025 and filesize < 800KB"),
    ("zip and part only", '    $ct = "[Content_Types].xml"', "uint32(0) == 0x04034b50 and $ct"),
    ("pdf structure", '    $x = "startxref"', "uint32(0) == 0x46445025 and $x"),
]


@pytest.mark.parametrize(("why", "strings", "condition"), DOCUMENT_ONLY, ids=[w for w, _, _ in DOCUMENT_ONLY])
def test_document_only_in_every_spelling_of_the_magic(why, strings, condition):
    found = [
        f for f in findings(rule("Doc_Lure", "OVT-5000", strings, condition)) if f.check == "document-only"
    ]
    assert found, why
    assert found[0].severity == BLOCKING


BENIGN_DOCUMENTS = [
    (
        "OLE maldoc with AutoOpen and Shell",
        '    $a = "AutoOpen" nocase\n    $s = "Shell" nocase\n    $w = "Please enable content"',
        "uint32(0) == 0xE011CFD0 and all of them",
    ),
    (
        "PDF with /JavaScript /OpenAction",
        '    $pdf = "%PDF"\n    $js = "/JavaScript"\n    $oa = "/OpenAction"',
        "$pdf at 0 and $js and $oa",
    ),
    (
        "PDF actions without the slash",
        '    $js = "JavaScript"\n    $oa = "OpenAction"\n    $w = "invoice"',
        "uint32be(0) == 0x25504446 and all of them",
    ),
    (
        "PDF action written with a name escape",
        '    $js = "/J#61vaScript"\n    $w = "invoice"',
        "uint32(0) == 0x46445025 and all of them",
    ),
    (
        "DocuSign phishing PDF",
        '    $d = "DocuSign" nocase\n    $r = "Review Document" nocase\n    $u = "/URI"',
        "uint32(0) == 0x46445025 and all of them",
    ),
    (
        "remote-template maldoc",
        '    $rels = "word/_rels/settings.xml.rels"\n    $t = "attachedTemplate"\n'
        '    $m = "TargetMode=\\"External\\""',
        "uint32(0) == 0x04034b50 and all of them",
    ),
    (
        "RTF equation exploit",
        '    $r = "{\\\\rt"\n    $o = "objdata"\n    $e = "Equation.3"',
        "$r at 0 and $o and $e",
    ),
    (
        "embedded executable in base64",
        '    $b = "TVqQAAMAAAAEAAAA"\n    $w = "invoice"',
        "uint32(0) == 0x46445025 and all of them",
    ),
    (
        "condition also admits PE",
        WORDS,
        "(uint32(0) == 0x46445025 or uint16(0) == 0x5A4D) and all of them",
    ),
    (
        "PowerShell in a document",
        '    $p = "powershell -nop -w hidden -enc"\n    $w = "invoice"',
        "uint32(0) == 0xE011CFD0 and all of them",
    ),
    (
        "JAR is zip, not a document",
        '    $m = "META-INF/MANIFEST.MF"\n    $w = "Main-Class"',
        "uint32(0) == 0x04034b50 and all of them",
    ),
    (
        "APK is zip, not a document",
        '    $d = "classes.dex"\n    $a = "AndroidManifest.xml"',
        "uint32(0) == 0x04034b50 and all of them",
    ),
    ("malformed-PDF heuristic", "    $magic = { 25 50 44 46 }", "$magic in (5..1024) and #magic == 1"),
    (
        "PDF version heuristic",
        "    $magic = { 25 50 44 46 }\n    $ver = /%PDF-1.\\d{1}/",
        "$magic in (0..1024) and not $ver",
    ),
]


@pytest.mark.parametrize(
    ("why", "strings", "condition"), BENIGN_DOCUMENTS, ids=[w for w, _, _ in BENIGN_DOCUMENTS]
)
def test_document_malware_rules_are_not_document_only(why, strings, condition):
    assert "document-only" not in checks(rule("Maldoc", "OVT-5100", strings, condition)), why


@pytest.mark.parametrize(
    ("why", "strings"),
    [
        ("ransom note", '    $a = "YOUR FILES ARE ENCRYPTED" wide ascii\n    $b = "bitcoin"'),
        ("German ransom note", '    $a = "Ihre Dateien wurden verschlüsselt"\n    $b = "geheimen Schlüssel"'),
        ("mimikatz", '    $a = "lsadump::secrets" wide ascii\n    $b = "sekurlsa::logonpasswords"'),
        ("GetSecretKey in a PE", '    $a = "GetSecretKey"\n    $b = "CryptEncrypt"'),
        ("PowerShell downloader", '    $a = "powershell -enc SQBFAFgA"\n    $b = "DownloadString"'),
    ],
)
def test_malware_rules_without_a_document_format_pass_every_check(why, strings):
    assert checks(rule("Malware", "OVT-5200", strings, "any of them")) == set(), why


def test_private_format_rule_reports_nothing_of_its_own():
    text = rule("RTFFILE", "OVT-5201", "", "uint32be(0) == 0x7B5C7274").replace(
        "rule RTFFILE", "private rule RTFFILE"
    )
    assert "document-only" not in checks(text)
    assert "document-only" in checks(text.replace("private rule", "rule"))


TARGETING = [
    ("user path", '    $u = "\\\\Users\\\\a.petrov\\\\Documents\\\\" nocase wide', "any of them"),
    ("xp profile", '    $u = "C:\\\\Documents and Settings\\\\jsmith\\\\My Documents"', "$u"),
    ("linux home", '    $u = "/home/alice/projects/plan"', "$u"),
    ("mac home", '    $u = "/Users/bob/Desktop/"', "$u"),
    ("UNC share", '    $h = "\\\\\\\\FS01.mod.local\\\\Planning\\\\"', "$h"),
    ("user path with a document", '    $u = "C:\\\\Users\\\\ivanov\\\\"', "uint32(0) == 0x46445025 and $u"),
]


@pytest.mark.parametrize(("why", "strings", "condition"), TARGETING, ids=[w for w, _, _ in TARGETING])
def test_user_and_host_paths_are_targeting(why, strings, condition):
    found = [f for f in findings(rule("Paths", "OVT-5300", strings, condition)) if f.check == "targeting"]
    assert found and found[0].severity == BLOCKING, why


BENIGN_PATHS = [
    (
        "PDB path of the malware's author",
        '    $p = "C:\\\\Users\\\\admin\\\\Desktop\\\\x\\\\Release\\\\x.pdb"\n    $q = "C:\\\\Users\\\\Umut\\\\source\\\\repos\\\\a"',
        "any of them",
    ),
    ("APPDATA drop path", '    $d = "%APPDATA%\\\\Microsoft\\\\svchost.exe"', "$d"),
    ("templated profile path", '    $d = "C:\\\\Users\\\\%s\\\\AppData\\\\Roaming\\\\x.dat"', "$d"),
    ("public profile", '    $d = "C:\\\\Users\\\\Public\\\\Libraries\\\\x.dll"', "$d"),
    (
        "PE gated developer path",
        '    $d = "C:\\\\Users\\\\mlk\\\\"\n    $e = "cmd.exe /c"',
        "uint16(0) == 0x5A4D and $d",
    ),
    ("pe module gate", '    $d = "/home/builder/out/"', "pe.number_of_sections > 2 and $d"),
    ("SAM registry path", '    $d = "\\\\Domains\\\\Account\\\\Users\\\\Names\\\\"', "$d"),
    ("lateral movement share template", '    $d = "\\\\\\\\%s\\\\ADMIN$"', "$d"),
    ("usage text", '    $d = "usage: copy \\\\\\\\ip\\\\sharename"', "$d"),
]


@pytest.mark.parametrize(("why", "strings", "condition"), BENIGN_PATHS, ids=[w for w, _, _ in BENIGN_PATHS])
def test_malware_paths_are_not_targeting(why, strings, condition):
    imports = 'import "pe"\n' if "pe." in condition else ""
    assert "targeting" not in checks(rule("Malware", "OVT-5400", strings, condition, imports=imports)), why


def test_lnk_fields_that_identify_a_machine_or_folder_are_targeting():
    text = rule(
        "LNK_Shortcut",
        "OVT-5500",
        "",
        'lnk.is_lnk and (lnk.local_base_path icontains "\\\\Negotiations\\\\" or '
        'lnk.tracker_data.machine_id == "mfa-ws-0142")',
        imports='import "lnk"\n',
    )
    evidence = {f.evidence for f in findings(text) if f.check == "targeting"}
    assert evidence == {"lnk.local_base_path", "lnk.tracker_data.machine_id"}


def test_lnk_malware_is_not_targeting():
    dropper = rule(
        "LNK_PowerShell_Dropper",
        "OVT-5501",
        "",
        'lnk.is_lnk and lnk.cmd_line_args icontains "powershell -w hidden"',
        imports='import "lnk"\n',
    )
    attributed = rule(
        "LNK_Actor_Machine",
        "OVT-5502",
        "",
        'lnk.is_lnk and lnk.cmd_line_args icontains "mshta" and lnk.tracker_data.machine_id == "desktop-q2"',
        imports='import "lnk"\n',
    )
    assert "targeting" not in checks(dropper)
    assert "targeting" not in checks(attributed)


@pytest.mark.parametrize(
    "condition",
    [
        'filename == "ministry-report.docx"',
        'filepath icontains "\\\\Finance\\\\Board\\\\"',
        'extension == ".xlsx"',
        'hostname == "mfa-ws-0142"',
        'username == "apetrov"',
        'customer == "ACME"',
        'owner == "jsmith"',
    ],
)
def test_externals_are_targeting(condition):
    assert "targeting" in checks(rule("Ext", "OVT-5600", '    $a = "payload"', f"$a and {condition}"))


def test_renamed_driver_is_advisory_self_name_only():
    text = rule(
        "Driver_Renamed_RTCore64",
        "OVT-5700",
        '    $a = "RTCore64.sys" wide',
        'uint16(0) == 0x5A4D and pe.version_info["OriginalFilename"] == "RTCore64.sys" and '
        'not filename iequals "RTCore64.sys" and not filename iequals pe.version_info["InternalName"]',
        imports='import "pe"\n',
    )
    found = findings(text)
    assert [(f.check, f.severity) for f in found] == [("self-name", ADVISORY)]


def test_renamed_tool_named_by_its_own_pattern_is_self_name():
    text = rule(
        "Renamed_PsExec",
        "OVT-5701",
        '    $a = "PsExec Service Host" wide',
        'uint16(0) == 0x5A4D and $a and not filename iendswith "psexec.exe"',
    )
    assert checks(text) == {"self-name"}


def test_a_document_name_is_never_self_name():
    text = rule(
        "Budget_Doc",
        "OVT-5702",
        '    $a = "budget.docx"',
        'uint16(0) == 0x5A4D and $a and filename == "budget.docx"',
    )
    assert "targeting" in checks(text)


COLLECTION = [
    ("meta key", {"upload_on_match": "true"}, ""),
    ("meta action", {"action": "upload"}, ""),
    ("meta purpose", {"purpose": "collect and submit matches"}, ""),
    ("meta exfil", {"exfil": "yes"}, ""),
    ("tag collect", {}, "collect"),
    ("tag exfil", {}, "triage exfil"),
    ("description uploads", {"description": "Uploads matching files to the vendor cloud"}, ""),
    ("description collect", {"description": "Collect documents containing the project codename"}, ""),
    (
        "description sends",
        {"description": "Sends a copy of every matching file to the cloud for analyst review"},
        "",
    ),
    ("description on match", {"description": "On match, the rule uploads the file silently"}, ""),
]


@pytest.mark.parametrize(("why", "extra", "tags"), COLLECTION, ids=[w for w, _, _ in COLLECTION])
def test_collection_from_meta_tags_and_description(why, extra, tags):
    text = rule("Quiet_Rule", "OVT-5800", '    $a = "payload"', "$a", **extra)
    if tags:
        text = tagged(text, "Quiet_Rule", tags)
    found = [f for f in findings(text) if f.check == "collection"]
    assert found and found[0].severity == BLOCKING, why


def test_collection_from_the_rule_name():
    assert "collection" in checks(rule("Collect_Word_Files", "OVT-5801", '    $a = "payload"', "$a"))


@pytest.mark.parametrize(
    ("extra", "tags"),
    [
        ({"description": "Detects a stealer that uploads browser data"}, ""),
        ({"description": "Detects an infostealer which exfiltrates documents via Telegram"}, ""),
        ({"description": "Malware collects files matching *.doc and sends them to its C2"}, ""),
        ({"description": "Detects the upload module of the RAT"}, ""),
        ({"upload_on_match": "false"}, ""),
        ({"sample": "uploaded to VirusTotal"}, ""),
        ({}, "stealer exfiltration_tool"),
    ],
)
def test_malware_descriptions_are_not_collection(extra, tags):
    text = rule("Win_Stealer", "OVT-5802", '    $a = "payload"', "$a", **extra)
    if tags:
        text = tagged(text, "Win_Stealer", tags)
    assert "collection" not in checks(text)


# --- round 2: the hostile tester's misses and false flags ---------------------------------------------------

TARGETING_DISGUISED = [
    (
        "regex user wildcard into Desktop",
        "    $a = /[A-Za-z]:\\\\Users\\\\[^\\\\]{1,40}\\\\Desktop\\\\/ nocase",
        "$a",
    ),
    ("regex separator classes", "    $a = /[\\\\\\/]Users[\\\\\\/]jdoe[\\\\\\/]/ nocase", "$a"),
    (
        "UTF-16LE hex",
        "    $a = { 5C 00 55 00 73 00 65 00 72 00 73 00 5C 00 6D 00 6B 00 6F 00 77 00 61 00 6C 00 73 00"
        " 6B 00 69 00 5C 00 }",
        "$a",
    ),
    (
        "split over two patterns",
        '    $a = "\\\\Users\\\\" nocase\n    $b = "\\\\Documents\\\\Finance\\\\" nocase',
        "$a and $b",
    ),
    ("USERPROFILE into Documents", '    $a = "%USERPROFILE%\\\\Documents\\\\" nocase wide ascii', "$a"),
    ("OneDrive variable", '    $a = "%OneDriveCommercial%\\\\Board\\\\"', "$a"),
    ("UNC share with $", '    $a = "\\\\\\\\FILESRV01\\\\finance$\\\\" nocase', "$a"),
    ("generated desktop name", '    $a = "DESKTOP-7K2L9QA" nocase wide ascii', "$a"),
    ("generated laptop name", '    $a = "laptop-q8r2m4z" nocase', "$a"),
    ("generated server name", '    $a = "WIN-4J8NQ2LKP0R"', "$a"),
    ("machine name split", '    $a = "DESKTOP-"\n    $b = "7K2L9QA"', "$b at @a + 8"),
]


@pytest.mark.parametrize(
    ("why", "strings", "condition"), TARGETING_DISGUISED, ids=[w for w, _, _ in TARGETING_DISGUISED]
)
def test_disguised_user_paths_and_machine_names_are_targeting(why, strings, condition):
    found = [f for f in findings(rule("Paths", "OVT-5310", strings, condition)) if f.check == "targeting"]
    assert found and found[0].severity == BLOCKING, why


BENIGN_PATHS_2 = [
    ("APPDATA drop via USERPROFILE", '    $d = "%USERPROFILE%\\\\AppData\\\\Roaming\\\\svc.exe"', "$d"),
    ("TEMP drop", '    $d = "%TEMP%\\\\Documents.exe"', "$d"),
    (
        "anti-sandbox host list in an executable",
        '    $h1 = "DESKTOP-7K2L9QA" wide\n    $h2 = "WIN-5E07COS9ALR" wide\n    $h3 = "WIN-4J8NQ2LKP0R" wide',
        "uint16(0) == 0x5A4D and 2 of them",
    ),
    (
        "regex PDB path under Desktop",
        "    $p = /\\\\Users\\\\[^\\\\]{1,30}\\\\Desktop\\\\[^\\\\]{1,40}\\\\Release\\\\[a-z]{3,20}\\.pdb/ nocase",
        "$p",
    ),
    (
        "stealer reading the Desktop, in a PE",
        '    $a = "%USERPROFILE%\\\\Desktop\\\\*.txt" wide\n    $b = "wallet.dat"',
        "uint16(0) == 0x5A4D and all of them",
    ),
    ("a word that is not a machine name", '    $a = "DESKTOP-SHORTCUT"', "$a"),
    (
        "a split that is a drop path",
        '    $a = "\\\\Users\\\\"\n    $b = "\\\\AppData\\\\Local\\\\Temp\\\\"',
        "$a and $b",
    ),
]


@pytest.mark.parametrize(
    ("why", "strings", "condition"), BENIGN_PATHS_2, ids=[w for w, _, _ in BENIGN_PATHS_2]
)
def test_drop_paths_build_paths_and_sandbox_lists_are_not_targeting(why, strings, condition):
    assert "targeting" not in checks(rule("Malware", "OVT-5410", strings, condition)), why


def test_a_targeting_message_shows_the_user_name_as_text():
    text = rule("Paths", "OVT-5311", '    $a = "C:\\\\Users\\\\Иванов\\\\" wide ascii', "$a")
    (found,) = [f for f in findings(text) if f.check == "targeting"]
    assert "C:\\Users\\Иванов" in found.message
    assert "Ð" not in found.message + found.evidence


@pytest.mark.parametrize(
    ("why", "strings", "condition"),
    [
        (
            "filename regex naming the rule's own program",
            '    $a = "PsExec" wide',
            "uint16(0) == 0x5A4D and $a and not filename matches /psexec(64)?\\.exe/i",
        ),
        ("an executable's own name", '    $a = "MZ"', 'filename iequals "svch0st.exe" and $a at 0'),
    ],
)
def test_renamed_programs_are_self_name_not_targeting(why, strings, condition):
    assert checks(rule("Renamed", "OVT-5710", strings, condition)) == {"self-name"}, why


@pytest.mark.parametrize(
    ("strings", "condition"),
    [
        ('    $a = "MZ"', 'uint16(0) == 0x5A4D and $a and filename iequals "report.pdf"'),
        ('    $a = "MZ"', 'uint16(0) == 0x5A4D and $a and filepath contains "\\\\Users\\\\jdoe\\\\"'),
        ('    $a = "Operation NIGHTFALL"', '$a and filename iequals "svch0st.exe"'),
    ],
)
def test_document_names_user_paths_and_unguarded_names_stay_targeting(strings, condition):
    assert "targeting" in checks(rule("Named", "OVT-5711", strings, condition))


def test_the_filetype_external_names_a_document_format():
    text = rule("Doc", "OVT-5010", '    $k = "Operation NIGHTFALL"', 'filetype == "PDF" and $k')
    (found,) = [f for f in findings(text) if f.check == "document-only"]
    assert "PDF" in found.message
    exe = rule("Exe", "OVT-5011", '    $k = "Operation NIGHTFALL"', 'filetype == "PE" and $k')
    assert "document-only" not in checks(exe)


@pytest.mark.parametrize(
    ("why", "strings", "condition"),
    [
        (
            "phishing PDF with a URL regex",
            '    $a = "DocuSign" nocase\n    $b = "Please review and sign" nocase\n'
            "    $u = /https?:\\/\\/[a-z0-9.-]{4,40}\\.(xyz|top|ru|icu)\\//",
            "uint32(0) == 0x46445025 and filesize < 400KB and all of them",
        ),
        (
            "XLM macro sheets",
            '    $a = "xl/macrosheets/" ascii\n    $b = "xl/workbook.xml" ascii',
            "uint32be(0) == 0x504B0304 and all of them",
        ),
        (
            "package part paths",
            '    $ct = "[Content_Types].xml"\n    $p = "customXml/item1.xml"',
            "uint32(0) == 0x04034b50 and all of them",
        ),
    ],
)
def test_links_macro_sheets_and_part_paths_are_not_document_hunting(why, strings, condition):
    assert "document-only" not in checks(rule("Maldoc", "OVT-5110", strings, condition)), why


COLLECTION_2 = [
    ("camelCase key", {"uploadOnMatch": "true"}),
    ("PascalCase key", {"UploadOnMatch": "true"}),
    ("submission key", {"sample_submission": "always"}),
    ("action value", {"on_hit": "retrieve_file"}),
    ("German", {"description": "bei einem Treffer wird die Datei vollständig hochgeladen und gesichert"}),
    ("French", {"description": "en cas de correspondance, le fichier est envoyé au serveur d'analyse"}),
    ("Spanish", {"description": "en caso de coincidencia, el archivo se envía a la nube para su revisión"}),
    ("Russian", {"description": "при срабатывании правила файл целиком копируется на сервер"}),
]


@pytest.mark.parametrize(("why", "extra"), COLLECTION_2, ids=[w for w, _ in COLLECTION_2])
def test_collection_in_any_key_spelling_and_language(why, extra):
    found = [
        f
        for f in findings(rule("Quiet", "OVT-5810", '    $a = "payload"', "$a", **extra))
        if f.check == "collection"
    ]
    assert found and found[0].severity == BLOCKING, why


@pytest.mark.parametrize(
    "description",
    [
        "Erkennt einen Stealer, der bei einem Treffer die Datei hochlädt und an den C2 sendet",
        "Schadsoftware, die gefundene Dateien hochlädt",
        "Détecte un voleur qui envoie les fichiers trouvés au serveur C2",
        "Detecta un troyano que envía los archivos encontrados al atacante",
        "Обнаруживает троян, который отправляет найденные файлы на сервер злоумышленника",
        "Обнаруживает загрузчик вредоносного ПО",
        "Detects the MITRE tactic Collection",
    ],
)
def test_malware_descriptions_in_any_language_are_not_collection(description):
    text = rule(
        "Stealer", "OVT-5811", '    $a = "payload"', "$a", description=description, tactic="Collection"
    )
    assert "collection" not in checks(text)


# --- third hostile round: decoy code, global gates, words in any script, split and tenant paths, MITRE tags

PDF_WORDS = (
    '    $w1 = "Ministry of Defence" nocase wide ascii\n    $w2 = "procurement plan" nocase wide ascii'
)
PDF_AND_WORDS = "uint32be(0) == 0x25504446 and all of ($w*)"

DECOY_CODE = [
    ("count at least zero", '    $js = "/JavaScript"', "#js >= 0"),
    ("tautology", '    $mz = "This program cannot be run in DOS mode"', "($mz or not $mz)"),
    (
        "count under a bound",
        '    $v = "Attribute VB_Name"\n    $s = "Scripting.FileSystemObject"',
        "#v + #s < 1000",
    ),
    ("explicitly not code", '    $js = "/JavaScript"', "not $js"),
    ("none of the code", '    $js = "/JavaScript"\n    $aa = "/OpenAction"', "none of ($js, $aa)"),
    ("link excluded", "    $u = /https?:\\/\\/[a-z]{4,20}\\.top\\//", "not $u"),
]


@pytest.mark.parametrize(("why", "strings", "condition"), DECOY_CODE, ids=[w for w, _, _ in DECOY_CODE])
def test_code_the_condition_only_mentions_does_not_clear_document_only(why, strings, condition):
    text = rule("Doc", "OVT-5900", strings + "\n" + PDF_WORDS, f"{PDF_AND_WORDS} and {condition}")
    assert "document-only" in checks(text), why


ADMITTED_CODE = [
    ("code required", '    $js = "/JavaScript"', "$js"),
    ("code counted", '    $js = "/JavaScript"', "#js > 2"),
    ("any of code and words", '    $js = "/JavaScript"', "any of them"),
    ("PE or PDF", '    $k = "kernel32"', "($k or uint16(0) == 0x5A4D)"),
]


@pytest.mark.parametrize(("why", "strings", "condition"), ADMITTED_CODE, ids=[w for w, _, _ in ADMITTED_CODE])
def test_code_the_condition_admits_clears_document_only(why, strings, condition):
    text = rule("Maldoc", "OVT-5901", strings + "\n" + PDF_WORDS, f"{PDF_AND_WORDS} and {condition}")
    assert "document-only" not in checks(text), why


def test_a_decoy_code_count_does_not_exempt_a_user_path():
    strings = '    $mz = "This program cannot be run in DOS mode"\n    $p = "C:\\\\Users\\\\ipetrov\\\\"'
    assert "targeting" in checks(rule("Path", "OVT-5902", strings, "$p and #mz >= 0"))


GLOBAL_PDF = 'global private rule PdfOnly {\n  meta:\n    id = "OVT-5910"\n  condition:\n    uint32be(0) == 0x25504446\n}\n'


@pytest.mark.parametrize("layout", ["same file", "another file"])
def test_a_global_rule_with_the_magic_gates_every_rule_of_the_tree(layout):
    words = rule("Words", "OVT-5911", PDF_WORDS, "all of them")
    files = {"r.yar": GLOBAL_PDF + words} if layout == "same file" else {"g.yar": GLOBAL_PDF, "r.yar": words}
    rs = ruleset(files)
    (target,) = [r for r in rs.yara if r.name == "Words"]
    assert "document-only" not in {f.check for f in check_rule(target)}
    found = [f for f in check_rule(target, globals=global_rules(rs.yara)) if f.check == "document-only"]
    assert found and found[0].severity == BLOCKING


def test_a_global_executable_gate_keeps_a_tree_quiet():
    gate = GLOBAL_PDF.replace("uint32be(0) == 0x25504446", "uint16(0) == 0x5A4D")
    rs = ruleset({"g.yar": gate, "r.yar": rule("Words", "OVT-5912", PDF_WORDS, PDF_AND_WORDS)})
    (target,) = [r for r in rs.yara if r.name == "Words"]
    assert "document-only" not in {f.check for f in check_rule(target, globals=global_rules(rs.yara))}


WORDS_ANY_SCRIPT = [
    (
        "Cyrillic wide and CP1251 hex",
        '    $n = "Петров Иван" wide\n    $n2 = { CF E5 F2 F0 EE E2 20 C8 E2 E0 ED }',
        "uint32be(0) == 0xD0CF11E0 and any of ($n*)",
    ),
    (
        "PDF title and subject",
        '    $t = "/Title (Procurement Plan"\n    $s = "/Subject (Defence"',
        "uint32be(0) == 0x25504446 and ($t or $s)",
    ),
    (
        "OOXML creator and title",
        '    $c = "<dc:creator>Ivan Petrov</dc:creator>"\n    $t = "<dc:title>Annual budget"\n'
        '    $d = "word/document.xml"',
        "uint32(0) == 0x04034B50 and $d and ($c or $t)",
    ),
]


@pytest.mark.parametrize(
    ("why", "strings", "condition"), WORDS_ANY_SCRIPT, ids=[w for w, _, _ in WORDS_ANY_SCRIPT]
)
def test_words_in_any_script_and_document_metadata_are_natural_language(why, strings, condition):
    assert "document-only" in checks(rule("Doc", "OVT-5920", strings, condition)), why


SPLIT_AND_TENANT_PATHS = [
    ("split, at", '    $a = "C:\\\\Users\\\\"\n    $b = "jdoe\\\\Documents\\\\"', "$b at @a[1] + !a[1]"),
    (
        "split, for loop",
        '    $a = "\\\\Users\\\\" wide ascii nocase\n    $b = "i.petrov\\\\" wide ascii nocase',
        "for any i in (1..#a): (for any j in (1..#b): (@b[j] == @a[i] + !a[i]))",
    ),
    ("regex alternation", "    $a = /\\\\(Users|home)\\\\(ipetrov|i\\.petrov)\\\\/ nocase wide ascii", "$a"),
    (
        "OneDrive tenant",
        '    $a = "\\\\OneDrive - Contoso Ministry\\\\Documents\\\\" nocase wide ascii',
        "$a",
    ),
]


@pytest.mark.parametrize(
    ("why", "strings", "condition"), SPLIT_AND_TENANT_PATHS, ids=[w for w, _, _ in SPLIT_AND_TENANT_PATHS]
)
def test_split_alternated_and_tenant_paths_are_targeting(why, strings, condition):
    assert "targeting" in checks(rule("Path", "OVT-5930", strings, condition)), why


@pytest.mark.parametrize(
    ("strings", "condition"),
    [
        ('    $a = "C:\\\\Users\\\\"\n    $b = "Public\\\\Downloads\\\\x.bin"', "$b at @a[1] + !a[1]"),
        ("    $a = /C:\\\\Users\\\\(Public|Default)\\\\AppData\\\\/", "$a"),
        ('    $a = "\\\\OneDrive - %s\\\\"', "$a"),
    ],
)
def test_generic_accounts_split_or_alternated_are_not_targeting(strings, condition):
    assert "targeting" not in checks(rule("Drop", "OVT-5931", strings, condition))


def test_mitre_tactic_tags_are_not_collection():
    text = tagged(
        rule("Stealer_FileGrabber", "OVT-5940", '    $a = "FileGrabber" wide', "$a"),
        "Stealer_FileGrabber",
        "Collection Exfiltration T1005 T1041",
    )
    assert "collection" not in checks(text)
    meta_only = rule("Grabber", "OVT-5941", '    $a = "FileGrabber" wide', "$a", mitre_tactic="Exfiltration")
    assert "collection" not in checks(tagged(meta_only, "Grabber", "Collection"))


@pytest.mark.parametrize("tags", ["collection T1005", "exfil T1041", "upload T1005", "Collection"])
def test_lowercase_or_non_mitre_collection_tags_still_count(tags):
    text = tagged(rule("Grabber", "OVT-5942", '    $a = "FileGrabber" wide', "$a"), "Grabber", tags)
    assert "collection" in checks(text), tags
