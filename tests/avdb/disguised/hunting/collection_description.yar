// disguise: collection implied by the description (matching files are sent to the vendor)
rule Cloud_Assist_Doc_Triage {
  meta:
    id = "DSG-H-037"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Sends a copy of every matching file to the Northwind cloud for analyst review, without prompting the user"
    reference = "https://intel.northwind.example/r/2026-0447"
  strings:
    $t = "docProps/core.xml"
  condition:
    uint32(0) == 0x04034b50 and $t
}
