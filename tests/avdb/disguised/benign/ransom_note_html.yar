// look-alike: an HTML ransom note ("All of your files have been encrypted", private key, Tor)
rule Ransom_Note_HTML_Generic {
  meta:
    id = "DSG-B-002"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects HTML ransom notes dropped in every folder"
    reference = "https://intel.northwind.example/r/2026-1002"
  strings:
    $h = "<html" nocase
    $n1 = "All of your files have been encrypted" nocase
    $n2 = "private key" nocase
    $n3 = "Tor Browser" nocase
    $n4 = "DO NOT RENAME ENCRYPTED FILES" nocase
  condition:
    $h and $n1 and 2 of ($n2, $n3, $n4)
}
