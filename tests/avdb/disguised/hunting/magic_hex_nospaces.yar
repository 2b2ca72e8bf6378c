// disguise: document magic written as hex without spaces (PDF and OLE2), natural-language strings
rule Office_Lure_Generic_Hex {
  meta:
    id = "DSG-H-026"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Generic Office and PDF lure"
    reference = "https://intel.northwind.example/r/2026-0436"
  strings:
    $pdf = { 255044462D }
    $ole = {D0CF11E0A1B11AE1}
    $w1 = "board minutes" nocase wide ascii
    $w2 = "salary review" nocase wide ascii
  condition:
    ($pdf at 0 or $ole at 0) and any of ($w*)
}
