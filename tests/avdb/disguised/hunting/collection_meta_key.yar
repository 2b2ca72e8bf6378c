// disguise: collection implied by a meta key (upload_on_match)
rule Win_Generic_Suspicious_PE {
  meta:
    id = "DSG-H-034"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Generic suspicious executable"
    reference = "https://intel.northwind.example/r/2026-0444"
    upload_on_match = true
  strings:
    $s = "This program cannot be run in DOS mode"
  condition:
    uint16(0) == 0x5A4D and $s
}
