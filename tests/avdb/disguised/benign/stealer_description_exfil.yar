// look-alike: a stealer whose description says it collects and exfiltrates data (the malware collects, the rule does not)
rule Win_InfoStealer_Telegram {
  meta:
    id = "DSG-B-023"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects an infostealer that collects browser credentials and exfiltrates them to its C2 over the Telegram bot API"
    reference = "https://intel.northwind.example/r/2026-1023"
  strings:
    $t = "api.telegram.org/bot" ascii wide
    $l = "\\Google\\Chrome\\User Data\\Default\\Login Data" ascii wide nocase
    $w = "wallet.dat" ascii wide
  condition:
    uint16(0) == 0x5A4D and 2 of them
}
