// look-alike: a remote-template maldoc rule on the extracted settings.xml.rels part (no magic)
rule Maldoc_Remote_Template_Rels {
  meta:
    id = "DSG-B-013"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects settings relationships that point to a remote template"
    reference = "https://intel.northwind.example/r/2026-1013"
  strings:
    $x = "<Relationships" nocase
    $rel = "attachedTemplate"
    $ext = "TargetMode=\"External\""
    $u = /Target="https?:\/\/[^"]{4,200}\.dotm?"/
  condition:
    all of them
}
