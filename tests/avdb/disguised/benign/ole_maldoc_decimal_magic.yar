// look-alike: an OLE maldoc with Document_Open and WScript.Shell, magic written as a decimal
rule Maldoc_OLE_DocOpen_WScript {
  meta:
    id = "DSG-B-004"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects Office documents whose macro starts WScript.Shell on open"
    reference = "https://intel.northwind.example/r/2026-1004"
  strings:
    $o = "Document_Open" nocase
    $w = "WScript.Shell" nocase
    $r = ".Run" nocase
  condition:
    uint32(0) == 3759263696 and all of them
}
