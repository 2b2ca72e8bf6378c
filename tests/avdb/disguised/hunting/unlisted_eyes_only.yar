// disguise: a marking that is not in the list: EYES ONLY spelled out
rule Gen_RAT_Panel_Label {
  meta:
    id = "DSG-H-020"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Panel label of a remote access tool"
    reference = "https://intel.northwind.example/r/2026-0430"
  strings:
    $e = "EYES ONLY" nocase wide ascii
  condition:
    $e
}
