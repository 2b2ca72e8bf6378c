// disguise: a user path as a plain string (\\Users\\<name>\\) and a host share path
rule Win_Recon_Path_Artifacts {
  meta:
    id = "DSG-H-029"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Path artifacts of a reconnaissance tool"
    reference = "https://intel.northwind.example/r/2026-0439"
  strings:
    $u = "\\Users\\a.petrov\\Documents\\" nocase ascii wide
    $h = "\\\\FS01.mod.local\\Planning\\" nocase ascii wide
  condition:
    any of them
}
