// disguise: a marking that is not in the list: the German long form transliterated (FUER for FÜR)
rule DE_Phish_Kit_Strings {
  meta:
    id = "DSG-H-018"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Strings of a German phishing kit"
    reference = "https://intel.northwind.example/r/2026-0428"
  strings:
    $d = "VS-NUR FUER DEN DIENSTGEBRAUCH" nocase ascii wide
  condition:
    $d
}
