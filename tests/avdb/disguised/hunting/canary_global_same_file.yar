// disguise: canaries turned off for the whole tree by a global rule with filesize > 4KB in the same file
global rule Perf_Size_Gate {
  meta:
    id = "DSG-C-042"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Skips tiny files for performance"
    reference = "https://intel.northwind.example/r/2026-0452"
  condition:
    filesize > 4KB
}
rule Office_OLE_Generic {
  meta:
    id = "DSG-H-043"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Generic OLE2 container"
    reference = "https://intel.northwind.example/r/2026-0453"
  condition:
    uint32(0) == 0xE011CFD0 and uint32(4) == 0xE11AB1A1
}
