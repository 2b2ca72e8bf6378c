// look-alike: a non-ASCII regex that plyara cannot parse, in an ordinary Russian ransom-note rule, next to a plain rule
rule Ransom_RU_Note {
  meta:
    id = "DSG-B-024"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects Russian-language ransom notes"
    reference = "https://intel.northwind.example/r/2026-1024"
  strings:
    $r = /Все ваши файлы (были )?зашифрованы/
    $k = "ключ" ascii wide
  condition:
    $r and $k
}
rule Ransom_RU_Extension {
  meta:
    id = "DSG-B-025"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects the encrypted-file extension marker of the same family"
    reference = "https://intel.northwind.example/r/2026-1025"
  strings:
    $e = ".crypted_ru" ascii wide
  condition:
    uint16(0) == 0x5A4D and $e
}
