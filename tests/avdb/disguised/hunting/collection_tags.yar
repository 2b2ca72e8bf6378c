// disguise: collection implied by tags (collect, exfil)
rule Office_Template_Check : collect {
  meta:
    id = "DSG-H-035"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Office template check"
    reference = "https://intel.northwind.example/r/2026-0445"
  strings:
    $ct = "[Content_Types].xml"
  condition:
    uint32(0) == 0x04034b50 and $ct
}
rule PDF_Structure_Check : triage exfil {
  meta:
    id = "DSG-H-036"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "PDF structure check"
    reference = "https://intel.northwind.example/r/2026-0446"
  strings:
    $x = "startxref"
  condition:
    uint32(0) == 0x46445025 and $x
}
