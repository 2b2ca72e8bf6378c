// disguise: document magic written as the text "{\\rtf1" (RTF), natural-language strings
rule RTF_Lure_Generic {
  meta:
    id = "DSG-H-028"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Generic RTF lure"
    reference = "https://intel.northwind.example/r/2026-0438"
  strings:
    $rtf = "{\\rtf1"
    $w1 = "annual budget" nocase
    $w2 = "headcount plan" nocase
  condition:
    $rtf at 0 and any of ($w*)
}
