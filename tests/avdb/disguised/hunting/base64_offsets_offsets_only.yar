// disguise: base64 of a marking written out only at offsets 1 and 2 (UTF-16LE "CONFIDENTIAL", Russian UTF-8 "СЕКРЕТНО")
rule Susp_Encoded_Blob_Wide_B64 {
  meta:
    id = "DSG-H-013"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Encoded blob of a PowerShell stager"
    reference = "https://intel.northwind.example/r/2026-0423"
  strings:
    $w1 = "MATwBOAEYASQBEAEUATgBUAEkAQQBMA"
    $w2 = "DAE8ATgBGAEkARABFAE4AVABJAEEATA"
    $r1 = "Ch0JXQmtCg0JXQotCd0J"
    $r2 = "QodCV0JrQoNCV0KLQndCe"
  condition:
    any of them
}
