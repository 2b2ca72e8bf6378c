// disguise: a duplicate rule name in a second file (a_trojans.yar defines it too); this one hunts every OOXML document
rule Win_Trojan_Agent {
  meta:
    id = "DSG-H-049"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Generic trojan agent, variant B"
    reference = "https://intel.northwind.example/r/2026-0459"
  strings:
    $ct = "[Content_Types].xml"
  condition:
    uint32(0) == 0x04034b50 and $ct
}
