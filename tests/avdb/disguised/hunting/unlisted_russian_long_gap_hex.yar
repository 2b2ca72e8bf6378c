// disguise: a marking that is not in the list: the long Russian form with a gap between its words (CP1251 hex with jumps)
rule RU_Encoded_Header_Gap {
  meta:
    id = "DSG-H-015"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Encoded header of a Russian-language implant"
    reference = "https://intel.northwind.example/r/2026-0425"
  strings:
    $g = { C4 CB DF [1-3] D1 CB D3 C6 C5 C1 CD CE C3 CE [1-3] CF CE CB DC C7 CE C2 C0 CD C8 DF }
  condition:
    $g
}
