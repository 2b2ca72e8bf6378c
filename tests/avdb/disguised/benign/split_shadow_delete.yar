// look-alike: two strings the condition joins by offset (split-marking shape) that spell a ransomware command
rule Ransom_Shadow_Delete_Split {
  meta:
    id = "DSG-B-019"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects ransomware deleting volume shadow copies"
    reference = "https://intel.northwind.example/r/2026-1019"
  strings:
    $a = "cmd.exe /c " ascii wide nocase
    $b = "vssadmin delete shadows" ascii wide nocase
  condition:
    for any i in (1..#a) : ( $b at @a[i] + 11 )
}
