// disguise: lnk module fields (the shortcut of a document the user opened, its folder and the machine it came from)
import "lnk"
rule LNK_Suspicious_Shortcut {
  meta:
    id = "DSG-H-030"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Suspicious shortcut file"
    reference = "https://intel.northwind.example/r/2026-0440"
  condition:
    lnk.is_lnk and (lnk.local_base_path icontains "\\Negotiations\\" or lnk.tracker_data.machine_id == "mfa-ws-0142")
}
