// disguise: base64 of a marking written out at offsets 0, 1 and 2 instead of using the base64 modifier ("TOP SECRET")
rule Susp_Encoded_Config_B64 {
  meta:
    id = "DSG-H-012"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Base64 encoded configuration of a downloader"
    reference = "https://intel.northwind.example/r/2026-0422"
  strings:
    $b0 = "VE9QIFNFQ1JFV"
    $b1 = "RPUCBTRUNSRV"
    $b2 = "UT1AgU0VDUkVU"
  condition:
    any of them
}
