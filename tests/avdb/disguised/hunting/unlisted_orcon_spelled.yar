// disguise: a marking that is not in the list: ORCON spelled out ("ORIGINATOR CONTROLLED")
rule Gen_Builder_Watermark {
  meta:
    id = "DSG-H-021"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Watermark of a malware builder"
    reference = "https://intel.northwind.example/r/2026-0431"
  strings:
    $o1 = "ORIGINATOR CONTROLLED" nocase wide ascii
    $o2 = "DISSEMINATION AND EXTRACTION OF INFORMATION CONTROLLED BY ORIGINATOR" nocase
  condition:
    any of them
}
