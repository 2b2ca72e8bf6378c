// disguise: a duplicate rule name in a second file; the first definition is an ordinary malware rule
rule Win_Trojan_Agent {
  meta:
    id = "DSG-C-048"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Generic trojan agent"
    reference = "https://intel.northwind.example/r/2026-0458"
  strings:
    $a = "Global\\AgentMutex_7781" wide ascii
  condition:
    uint16(0) == 0x5A4D and $a
}
