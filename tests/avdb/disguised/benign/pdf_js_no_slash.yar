// look-alike: a PDF with JavaScript and OpenAction written without the leading slash, magic as hex without spaces
rule PDF_Exploit_JS_NoSlash {
  meta:
    id = "DSG-B-006"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects PDF exploits with an automatic JavaScript action"
    reference = "https://intel.northwind.example/r/2026-1006"
  strings:
    $m = { 25504446 }
    $js = "JavaScript"
    $oa = "OpenAction"
    $u = "unescape" nocase
  condition:
    $m at 0 and $js and $oa and $u
}
