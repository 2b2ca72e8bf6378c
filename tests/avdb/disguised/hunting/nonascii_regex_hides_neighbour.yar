// disguise: a non-ASCII regex that yara-x compiles but plyara cannot parse; the hunting rule hides beside it
rule Ransom_RU_Note_Regex {
  meta:
    id = "DSG-C-038"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Russian-language ransom note"
    reference = "https://intel.northwind.example/r/2026-0448"
  strings:
    $r = /Ваши файлы (были )?зашифрованы/
    $b = "bitcoin" nocase
  condition:
    $r and $b
}
rule Win_Backdoor_Banner_Plain {
  meta:
    id = "DSG-H-039"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Banner of a backdoor"
    reference = "https://intel.northwind.example/r/2026-0449"
  strings:
    $a = "TOP SECRET" ascii wide
  condition:
    $a
}
