// disguise: document magic written as uint32be(0)==0x25504446 (PDF), natural-language strings, no code indicator
rule PDF_Lure_Generic_Text {
  meta:
    id = "DSG-H-025"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Generic PDF lure"
    reference = "https://intel.northwind.example/r/2026-0435"
  strings:
    $w1 = "Ministry of Defence" nocase
    $w2 = "negotiating position" nocase
    $w3 = "draft agreement" nocase
  condition:
    uint32be(0) == 0x25504446 and 2 of ($w*)
}
