// disguise: a regex with character classes and case-insensitive flags (C[O0]NF[I1l]D[E3]NT[I1l]AL, and S//NF banners)
rule Susp_Leet_Token_Regex {
  meta:
    id = "DSG-H-007"
    version = "4"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Leetspeak token used by a crimeware kit"
    reference = "https://intel.northwind.example/r/2026-0417"
  strings:
    $r1 = /C[O0]NF[I1l]D[E3]NT[I1l]AL/i
    $r2 = /(S|\$)[E3]CR[E3]T\/{1,2}(N[O0]F[O0]RN|REL TO)/ wide ascii
  condition:
    any of them
}
