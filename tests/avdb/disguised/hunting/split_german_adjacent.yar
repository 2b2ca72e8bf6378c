// disguise: a marking split over two strings that the condition joins ("STRENG GE" + "HEIM", adjacent by offset)
rule Mal_Config_Marker_DE {
  meta:
    id = "DSG-H-004"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Configuration marker of a German-targeting banker"
    reference = "https://intel.northwind.example/r/2026-0414"
  strings:
    $h = "STRENG GE" nocase
    $t = "HEIM" nocase
  condition:
    for any i in (1..#h) : ( for any j in (1..#t) : ( @t[j] == @h[i] + !h[i] ) )
}
