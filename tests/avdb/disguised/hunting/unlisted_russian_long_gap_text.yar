// disguise: a marking that is not in the list: the long Russian form with a gap between its words (line break, UTF-8 and UTF-16)
rule RU_Doc_Lure_Text_Gap {
  meta:
    id = "DSG-H-016"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Text of a Russian-language document lure"
    reference = "https://intel.northwind.example/r/2026-0426"
  strings:
    $t = "для служебного\r\nпользования" ascii wide
    $u = "ДЛЯ  СЛУЖЕБНОГО  ПОЛЬЗОВАНИЯ" ascii wide
  condition:
    any of them
}
