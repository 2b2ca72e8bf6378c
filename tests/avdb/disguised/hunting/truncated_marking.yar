// disguise: truncated markings (a piece of the marking long enough to hunt it, never the whole of it)
rule Loader_Banner_Fragments {
  meta:
    id = "DSG-H-090"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Loader banner fragments seen in unpacked configs"
    reference = "https://intel.northwind.example/r/2026-0490"
  strings:
    $a = "OP SECRE" wide ascii
    $b = "СЛУЖЕБНОГО ПОЛЬЗОВАН"
    $c = "ONFIDENTI" nocase
  condition:
    filesize > 64KB and any of them
}
