// look-alike: a DocuSign phishing PDF with a link annotation and an https URL, magic as uint32be
rule Phish_PDF_DocuSign_Link {
  meta:
    id = "DSG-B-015"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects phishing PDF files that imitate a DocuSign envelope"
    reference = "https://intel.northwind.example/r/2026-1015"
  strings:
    $d = "DocuSign Envelope" nocase
    $a = "/Annots"
    $l = /https:\/\/[a-z0-9.\-]{4,60}\/(docs|sign|view)/
  condition:
    uint32be(0) == 0x25504446 and all of them
}
