// disguise: hex with alternatives, one per byte, so no concrete run is longer than a byte (top secret in any case)
rule Mal_Decoder_Table_Alt {
  meta:
    id = "DSG-H-010"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Decoder table of a modular implant"
    reference = "https://intel.northwind.example/r/2026-0420"
  strings:
    $a1 = { (54|74) (4F|6F) (50|70) 20 (53|73) (45|65) (43|63) (52|72) (45|65) (54|74) }
    $a2 = { 53 45 43 52 45 54 ( 2F 2F | 20 2F 2F 20 ) 4E 4F 46 4F 52 4E }
  condition:
    any of them
}
