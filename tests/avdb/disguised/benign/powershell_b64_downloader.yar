// look-alike: a base64 PowerShell downloader (base64wide modifier, like the base64-at-offsets disguise)
rule PS_B64_Downloader {
  meta:
    id = "DSG-B-008"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects encoded PowerShell downloaders"
    reference = "https://intel.northwind.example/r/2026-1008"
  strings:
    $p = "powershell" ascii wide nocase
    $e = "-enc" ascii wide nocase
    $d = "DownloadString" base64wide
    $i = "IEX (New-Object Net.WebClient)" base64wide
  condition:
    $p and $e and ($d or $i)
}
