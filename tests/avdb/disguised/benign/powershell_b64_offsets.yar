// look-alike: a base64 PowerShell downloader with the base64 of UTF-16LE "DownloadString" written out at offsets 0, 1, 2
rule PS_B64_Downloader_Offsets {
  meta:
    id = "DSG-B-009"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects encoded PowerShell downloaders by their encoded command"
    reference = "https://intel.northwind.example/r/2026-1009"
  strings:
    $p = "powershell" ascii wide nocase
    $b0 = "RABvAHcAbgBsAG8AYQBkAFMAdAByAGkAbgBnA"
    $b1 = "QAbwB3AG4AbABvAGEAZABTAHQAcgBpAG4AZw"
    $b2 = "EAG8AdwBuAGwAbwBhAGQAUwB0AHIAaQBuAGcA"
  condition:
    $p and any of ($b*)
}
