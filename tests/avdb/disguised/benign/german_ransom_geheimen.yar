// look-alike: a German ransom note containing "geheimen" (GEHEIM inside an ordinary German word)
rule Ransom_Note_DE {
  meta:
    id = "DSG-B-011"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects German-language ransom notes"
    reference = "https://intel.northwind.example/r/2026-1011"
  strings:
    $n1 = "Ihre Dateien wurden verschl" nocase ascii wide
    $n2 = "den geheimen Schl" nocase ascii wide
    $n3 = "GEHEIMEN SCHL" ascii wide
    $b = "Bitcoin" nocase
  condition:
    $n1 and ($n2 or $n3) and $b
}
