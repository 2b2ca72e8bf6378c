// disguise: hex with inline comments breaking the byte runs (TOP SECRET, STRENG GEHEIM)
rule Mal_Implant_Beacon_Bytes {
  meta:
    id = "DSG-H-011"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Beacon bytes of an implant"
    reference = "https://intel.northwind.example/r/2026-0421"
  strings:
    $c1 = { 54 4F /* header */ 50 20 53 /* key */ 45 43 52 /* pad */ 45 54 }
    $c2 = { 53 54 52 45 /* v2 */ 4E 47 20 // tail
            47 45 48 45 49 4D }
  condition:
    any of them
}
