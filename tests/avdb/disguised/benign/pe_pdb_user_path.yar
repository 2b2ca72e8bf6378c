// look-alike: a PDB path C:\Users\dev\...\Release\x.pdb in a PE rule (a user path that is a build artifact)
rule Win_Loader_PDB_Path {
  meta:
    id = "DSG-B-017"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects a loader by the PDB path left in its debug directory"
    reference = "https://intel.northwind.example/r/2026-1017"
  strings:
    $pdb = "C:\\Users\\dev\\source\\repos\\SvcLoader\\Release\\SvcLoader.pdb" ascii
  condition:
    uint16(0) == 0x5A4D and $pdb
}
