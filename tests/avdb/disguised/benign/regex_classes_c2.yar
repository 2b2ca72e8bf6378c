// look-alike: regexes with character classes (a C2 gate URL, a case-scrambled PowerShell flag), like the regex disguise
rule Win_Downloader_Gate_Regex {
  meta:
    id = "DSG-B-020"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects a downloader by its gate URL and command line"
    reference = "https://intel.northwind.example/r/2026-1020"
  strings:
    $u = /https?:\/\/[a-z0-9\-]{4,30}\.(top|xyz|club)\/gate\.php/ ascii wide
    $p = /[Pp][Oo][Ww][Ee][Rr][Ss][Hh][Ee][Ll][Ll](\.exe)?\s+-[Ww]\s+[Hh]idden/ ascii wide
  condition:
    uint16(0) == 0x5A4D and any of them
}
