// look-alike: an ordinary PE rule in a tree with a global size limit (00_settings.yar)
rule Win_Backdoor_Config {
  meta:
    id = "DSG-B-029"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects a backdoor by its configuration markers"
    reference = "https://intel.northwind.example/r/2026-1029"
  strings:
    $c1 = "beacon_interval=" ascii
    $c2 = "c2_host=" ascii
  condition:
    uint16(0) == 0x5A4D and all of them
}
