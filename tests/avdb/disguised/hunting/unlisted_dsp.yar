// disguise: a marking that is not in the list: ДСП (Russian "for official use"), next to a copy-number line
rule RU_Targeted_Lure_Strings {
  meta:
    id = "DSG-H-014"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Strings of a Russian-language lure"
    reference = "https://intel.northwind.example/r/2026-0424"
  strings:
    $a = "ДСП" ascii wide
    $n = "Экз. №"
  condition:
    $a and $n
}
