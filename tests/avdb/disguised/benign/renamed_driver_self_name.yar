// look-alike: a renamed-driver rule comparing filename with pe.version_info["OriginalFilename"] (self-name, advisory)
import "pe"
rule Driver_Renamed_RTCore64 {
  meta:
    id = "DSG-B-018"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects the vulnerable RTCore64 driver under another file name"
    reference = "https://intel.northwind.example/r/2026-1018"
  condition:
    pe.is_pe and pe.version_info["OriginalFilename"] == "RTCore64.sys" and not (filename iequals pe.version_info["OriginalFilename"])
}
