// disguise: a rule on document format plus size with no strings at all (OLE2 between 200 KB and 3 MB, PDF under 800 KB)
rule Doc_Size_Heuristic_A {
  meta:
    id = "DSG-H-031"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Size heuristic for droppers"
    reference = "https://intel.northwind.example/r/2026-0441"
  condition:
    uint32be(0) == 0xD0CF11E0 and filesize > 200KB and filesize < 3MB
}
rule Doc_Size_Heuristic_B {
  meta:
    id = "DSG-H-032"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Size heuristic for droppers"
    reference = "https://intel.northwind.example/r/2026-0442"
  condition:
    uint32(0) == 0x46445025 and filesize < 800KB
}
