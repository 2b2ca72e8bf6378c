// disguise: filepath and filename conditions (externals): documents in one department folder
rule Gen_Path_Heuristic {
  meta:
    id = "DSG-H-033"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Path heuristic"
    reference = "https://intel.northwind.example/r/2026-0443"
  condition:
    filepath icontains "\\Finance\\Board\\" or filename iendswith "_budget.xlsx"
}
