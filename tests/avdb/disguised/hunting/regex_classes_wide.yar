// disguise: a regex with character classes, with the wide modifier (UTF-16 documents)
rule Gen_Obfuscated_Banner_Regex_W {
  meta:
    id = "DSG-H-006"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Wide obfuscated banner string of a backdoor"
    reference = "https://intel.northwind.example/r/2026-0416"
  strings:
    $r = /T[O0]P\s+S[E3]CRET/ wide
  condition:
    $r
}
