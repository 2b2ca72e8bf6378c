// disguise: a marking that is not in the list: VS-NfD (German "for official use only", short form)
rule DE_Banker_Inject_Marker {
  meta:
    id = "DSG-H-017"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Web inject marker of a German banker"
    reference = "https://intel.northwind.example/r/2026-0427"
  strings:
    $v1 = "VS-NfD" ascii wide
    $v2 = "VS - NfD" nocase
  condition:
    any of them
}
