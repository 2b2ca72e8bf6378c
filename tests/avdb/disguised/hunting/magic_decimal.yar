// disguise: document magic written as a decimal (OLE2 3759263696 == 0xE011CFD0, PDF 1178882085 == 0x46445025)
rule Doc_Lure_Generic_Dec {
  meta:
    id = "DSG-H-027"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Generic document lure"
    reference = "https://intel.northwind.example/r/2026-0437"
  strings:
    $w1 = "tender evaluation" nocase wide ascii
    $w2 = "bid price" nocase wide ascii
  condition:
    (uint32(0) == 3759263696 or uint32(0) == 1178882085) and all of them
}
