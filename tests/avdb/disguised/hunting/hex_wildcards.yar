// disguise: hex with ?? wildcards, nibble wildcards and ~ negation (NOFORN, TOP SECRET, wide CONFIDENTIAL); with a filesize > 16KB bound so that small canaries miss it
rule Mal_Packer_Signature_Wild {
  meta:
    id = "DSG-H-009"
    version = "2"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Packer signature with masked bytes"
    reference = "https://intel.northwind.example/r/2026-0419"
  strings:
    $w1 = { 4E 4F ?? 4F 52 4E }
    $w2 = { 5? 4F 50 ~00 53 45 4? 52 45 54 }
    $w3 = { 43 00 4F 00 4E 00 46 00 49 00 44 00 ?? 00 4E 00 54 00 49 00 41 00 4C 00 }
  condition:
    filesize > 16KB and any of them
}
