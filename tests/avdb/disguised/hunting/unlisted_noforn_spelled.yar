// disguise: a marking that is not in the list: NOFORN spelled out ("NOT RELEASABLE TO FOREIGN NATIONALS")
rule Gen_Dissem_Control_String {
  meta:
    id = "DSG-H-019"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Dissemination string seen in a RAT builder"
    reference = "https://intel.northwind.example/r/2026-0429"
  strings:
    $n = "NOT RELEASABLE TO FOREIGN NATIONALS" nocase wide ascii
  condition:
    $n
}
