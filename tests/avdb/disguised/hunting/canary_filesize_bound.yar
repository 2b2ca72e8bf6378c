// disguise: canaries turned off by a filesize > bound in the rule itself (canaries are smaller)
rule Office_OOXML_Large {
  meta:
    id = "DSG-H-044"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Large OOXML container"
    reference = "https://intel.northwind.example/r/2026-0454"
  strings:
    $ct = "[Content_Types].xml"
  condition:
    uint32(0) == 0x04034b50 and $ct and filesize > 1MB
}
rule PDF_Banner_Large {
  meta:
    id = "DSG-H-045"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Large PDF with banner"
    reference = "https://intel.northwind.example/r/2026-0455"
  strings:
    $b = /SECRET\/\/[A-Z]/
  condition:
    uint32(0) == 0x46445025 and $b and filesize > 64KB
}
