// disguise: canaries turned off for the whole tree by a global rule filesize > 4KB in another file (this file)
global rule Scan_Min_Size {
  meta:
    id = "DSG-C-046"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Minimum size for all rules of this tree"
    reference = "https://intel.northwind.example/r/2026-0456"
  condition:
    filesize > 4KB
}
