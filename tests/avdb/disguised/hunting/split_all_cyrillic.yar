// disguise: a marking split over two strings that the condition joins (Russian "СОВЕРШЕННО СЕК" + "РЕТНО", all of them)
rule Gen_Dropper_Strings_RU {
  meta:
    id = "DSG-H-003"
    version = "2"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Strings seen in a Russian-language dropper"
    reference = "https://intel.northwind.example/r/2026-0413"
  strings:
    $p1 = "СОВЕРШЕННО СЕК"
    $p2 = "РЕТНО"
  condition:
    all of them
}
