// look-alike: a ransom note ("YOUR FILES ARE ENCRYPTED"); resembles a marking in plain text, and a regex with classes
rule Ransom_Note_Generic_EN {
  meta:
    id = "DSG-B-001"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects ransom notes of a ransomware family"
    reference = "https://intel.northwind.example/r/2026-1001"
  strings:
    $s1 = "YOUR FILES ARE ENCRYPTED" ascii wide nocase
    $s2 = "bitcoin" ascii wide nocase
    $s3 = /[a-z2-7]{56}\.onion/
    $s4 = "decryption key" ascii wide nocase
  condition:
    filesize < 100KB and $s1 and 2 of ($s2, $s3, $s4)
}
