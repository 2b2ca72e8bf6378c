// look-alike: a global rule with an upper size bound (filesize < 20MB) for the whole tree, like the global-rule canary disguise
global private rule Scan_Size_Limit {
  meta:
    id = "DSG-B-028"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Skips files larger than 20 MB"
    reference = "https://intel.northwind.example/r/2026-1028"
  condition:
    filesize < 20MB
}
