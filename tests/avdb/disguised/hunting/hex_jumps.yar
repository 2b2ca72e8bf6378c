// disguise: hex with jumps (CONF [0-2] IDENTIAL; TOP [1-3] SECRET)
rule Mal_Shellcode_Stub_Jumps {
  meta:
    id = "DSG-H-008"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Shellcode stub with variable padding"
    reference = "https://intel.northwind.example/r/2026-0418"
  strings:
    $s1 = { 43 4F 4E 46 [0-2] 49 44 45 4E 54 49 41 4C }
    $s2 = { 54 4F 50 [1-3] 53 45 43 52 [0-1] 45 54 }
  condition:
    any of them
}
