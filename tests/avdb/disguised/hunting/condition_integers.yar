// disguise: the condition spells the marking in integers compared with the file's bytes, with no pattern at all
rule Heap_Spray_Marker_Scan {
  meta:
    id = "DSG-H-091"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Heap spray marker in memory dumps"
    reference = "https://intel.northwind.example/r/2026-0491"
  condition:
    filesize > 6MB and for any i in (0..4096) : (
      uint32be(i) == 0x544F5020 and uint32be(i + 4) == 0x53454352 and uint16be(i + 8) == 0x4554
    )
}
