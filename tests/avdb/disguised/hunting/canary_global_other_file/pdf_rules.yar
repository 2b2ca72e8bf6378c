// disguise: canaries turned off by a global rule in another file (00_settings.yar); this rule hunts every PDF
rule PDF_Generic_Container {
  meta:
    id = "DSG-H-047"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Generic PDF container"
    reference = "https://intel.northwind.example/r/2026-0457"
  strings:
    $eof = "%%EOF"
  condition:
    uint32be(0) == 0x25504446 and $eof
}
