// look-alike: GetSecretKey in a PE (SECRET inside an identifier)
rule Win_Ransom_Crypto_Imports {
  meta:
    id = "DSG-B-007"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects a ransomware family by its key handling routines"
    reference = "https://intel.northwind.example/r/2026-1007"
  strings:
    $k = "GetSecretKey" ascii wide
    $c = "CryptEncrypt"
    $e = ".locked" wide
  condition:
    uint16(0) == 0x5A4D and uint32(uint32(0x3C)) == 0x00004550 and all of them
}
