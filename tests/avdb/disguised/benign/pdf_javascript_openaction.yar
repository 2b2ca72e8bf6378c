// look-alike: a PDF with /JavaScript /OpenAction
rule PDF_JS_OpenAction {
  meta:
    id = "DSG-B-005"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects PDF files that run JavaScript when opened"
    reference = "https://intel.northwind.example/r/2026-1005"
  strings:
    $js = "/JavaScript" nocase
    $oa = "/OpenAction" nocase
    $ev = "eval(" nocase
  condition:
    uint32(0) == 0x46445025 and $js and $oa and $ev
}
