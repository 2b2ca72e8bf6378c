// look-alike: an OLE maldoc with AutoOpen and Shell (document magic as uint32be, code indicators)
rule Maldoc_OLE_AutoOpen_Shell {
  meta:
    id = "DSG-B-003"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects Word documents with an auto-executing macro that runs a shell command"
    reference = "https://intel.northwind.example/r/2026-1003"
  strings:
    $a = "AutoOpen" nocase
    $s = "Shell" nocase
    $v = "VBA_PROJECT" wide
  condition:
    uint32be(0) == 0xD0CF11E0 and $a and $s and $v
}
