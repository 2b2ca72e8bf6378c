// disguise: a marking split over two strings that the condition joins ("TOP SE" + "CRET//", second right after the first); with a filesize > 16KB bound so that small canaries miss it
rule APT_Loader_Config_Block_A {
  meta:
    id = "DSG-H-001"
    version = "3"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Loader configuration block marker"
    reference = "https://intel.northwind.example/r/2026-0411"
  strings:
    $cfg_a = "TOP SE"
    $cfg_b = "CRET//"
  condition:
    filesize > 16KB and for any i in (1..#cfg_a) : ( $cfg_b at @cfg_a[i] + 6 )
}
