// disguise: a marking that is not in the list: "CLASSIFIED" (with a classification authority block)
rule Gen_Lure_Footer_Strings {
  meta:
    id = "DSG-H-023"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Footer strings of a lure document"
    reference = "https://intel.northwind.example/r/2026-0433"
  strings:
    $c = "CLASSIFIED" ascii wide
    $d = "Declassify On" nocase ascii wide
  condition:
    $c and $d
}
