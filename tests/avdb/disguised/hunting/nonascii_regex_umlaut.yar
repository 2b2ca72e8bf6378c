// disguise: a non-ASCII regex (German umlaut) that plyara cannot parse, with a plain German marking rule in the same file
rule Ransom_DE_Note_Regex {
  meta:
    id = "DSG-C-040"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "German-language ransom note"
    reference = "https://intel.northwind.example/r/2026-0450"
  strings:
    $r = /Ihre Dateien wurden verschlüsselt/
  condition:
    $r
}
rule DE_Loader_Resource_Plain {
  meta:
    id = "DSG-H-041"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Resource string of a loader"
    reference = "https://intel.northwind.example/r/2026-0451"
  strings:
    $g = "STRENG GEHEIM" nocase wide ascii
  condition:
    $g
}
