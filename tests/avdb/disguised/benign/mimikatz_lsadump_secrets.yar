// look-alike: mimikatz lsadump::secrets (SECRET as part of a command word)
rule HackTool_Mimikatz_Strings {
  meta:
    id = "DSG-B-010"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects mimikatz by its command strings"
    reference = "https://intel.northwind.example/r/2026-1010"
  strings:
    $m1 = "lsadump::secrets" ascii wide nocase
    $m2 = "sekurlsa::logonpasswords" ascii wide nocase
    $m3 = "mimikatz" ascii wide nocase
  condition:
    2 of them
}
