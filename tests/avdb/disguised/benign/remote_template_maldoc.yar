// look-alike: a remote-template maldoc (OOXML template injection, zip magic)
rule Maldoc_Remote_Template {
  meta:
    id = "DSG-B-012"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects Word documents that load a remote template"
    reference = "https://intel.northwind.example/r/2026-1012"
  strings:
    $rel = "/relationships/attachedTemplate"
    $tgt = "Target=\"http" nocase
    $ext = "TargetMode=\"External\""
    $ct = "[Content_Types].xml"
  condition:
    uint32(0) == 0x04034b50 and $ct and $rel and $tgt and $ext
}
