// look-alike: a DocuSign phishing PDF (brand strings in a document format, with a link action)
rule Phish_PDF_DocuSign {
  meta:
    id = "DSG-B-014"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects DocuSign-themed phishing PDF files"
    reference = "https://intel.northwind.example/r/2026-1014"
  strings:
    $d = "DocuSign" nocase
    $r = "Review Document" nocase
    $u = "/URI" nocase
  condition:
    uint32(0) == 0x46445025 and $d and $r and $u
}
