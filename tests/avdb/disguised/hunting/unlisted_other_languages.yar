// disguise: a marking that is not in the list: French, Chinese and NATO forms (SECRET DÉFENSE, 绝密, COSMIC TOP SECRET)
rule Gen_Multilang_Resource {
  meta:
    id = "DSG-H-024"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Multi-language resource strings of a loader"
    reference = "https://intel.northwind.example/r/2026-0434"
  strings:
    $f = "CONFIDENTIEL DÉFENSE" nocase
    $z = "绝密" ascii wide
    $n = "COSMIC TOP" nocase
  condition:
    any of them
}
