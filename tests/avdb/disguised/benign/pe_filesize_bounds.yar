// look-alike: size bounds (filesize > and <) in an ordinary PE rule, like the filesize canary disguise
rule Win_Trojan_Sized {
  meta:
    id = "DSG-B-026"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects a trojan family within its usual size range"
    reference = "https://intel.northwind.example/r/2026-1026"
  strings:
    $m = "Global\\SvcSyncMutex" ascii wide
    $c = "/api/v2/checkin" ascii
  condition:
    uint16(0) == 0x5A4D and filesize > 100KB and filesize < 3MB and all of them
}
