// disguise: a regex with character classes (T[O0]P\s+S[E3]CRET); with a filesize > 16KB bound so that small canaries miss it
rule Gen_Obfuscated_Banner_Regex {
  meta:
    id = "DSG-H-005"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Obfuscated banner string of a backdoor"
    reference = "https://intel.northwind.example/r/2026-0415"
  strings:
    $r = /T[O0]P\s+S[E3]CRET/
  condition:
    filesize > 16KB and $r
}
