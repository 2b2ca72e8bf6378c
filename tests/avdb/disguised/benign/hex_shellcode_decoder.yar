// look-alike: hex with jumps, wildcards, alternatives and comments (shellcode), like the hex disguise
rule Win_Shellcode_Decoder {
  meta:
    id = "DSG-B-021"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects the XOR decoder stub of a shellcode loader"
    reference = "https://intel.northwind.example/r/2026-1021"
  strings:
    $d1 = { 55 8B EC 83 EC ?? 53 56 57 [4-16] E8 ?? ?? ?? ?? 85 C0 ( 74 | 75 ) ?? }
    $d2 = { 8A 0? /* load */ 32 ?? /* xor key */ 88 0? 4? 3B ?? 7C F? }
    $d3 = { 64 A1 30 00 00 00 [2-6] 8B 40 0C ~00 }
  condition:
    uint16(0) == 0x5A4D and any of them
}
