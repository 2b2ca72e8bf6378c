// disguise: a marking split over two strings that the condition joins ("CONFIDEN" + "TIAL", first offsets compared)
rule Win_Stealer_Resource_Tag {
  meta:
    id = "DSG-H-002"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Resource tag used by a stealer family"
    reference = "https://intel.northwind.example/r/2026-0412"
  strings:
    $t1 = "CONFIDEN" nocase wide ascii
    $t2 = "TIAL" nocase wide ascii
  condition:
    $t1 and $t2 and @t2[1] == @t1[1] + 8
}
