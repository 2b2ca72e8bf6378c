// disguise: a marking that is not in the list: TS//SCI and S//NF with two slashes (only TS/SCI with one slash is listed)
rule Gen_Separator_Tokens {
  meta:
    id = "DSG-H-022"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Separator tokens of a C2 protocol"
    reference = "https://intel.northwind.example/r/2026-0432"
  strings:
    $t = "TS//SCI" wide ascii
    $s = "S//NF" wide ascii
  condition:
    any of them
}
