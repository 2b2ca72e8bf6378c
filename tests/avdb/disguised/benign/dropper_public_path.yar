// look-alike: a dropper path under C:\Users\Public and AppData (generic locations, no user name)
rule Win_Dropper_Public_Path {
  meta:
    id = "DSG-B-027"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects a dropper by the paths it writes its payload to"
    reference = "https://intel.northwind.example/r/2026-1027"
  strings:
    $p1 = "C:\\Users\\Public\\Libraries\\svchost.exe" ascii wide nocase
    $p2 = "\\AppData\\Roaming\\Microsoft\\Windows\\Start Menu\\Programs\\Startup\\" ascii wide nocase
  condition:
    uint16(0) == 0x5A4D and any of them
}
