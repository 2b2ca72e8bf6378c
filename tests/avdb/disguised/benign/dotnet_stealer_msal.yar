// look-alike: ConfidentialClientApplicationBuilder and client_secret in a .NET stealer (markings inside identifiers)
import "dotnet"
rule MSIL_Stealer_Graph_Token {
  meta:
    id = "DSG-B-016"
    version = "1"
    author = "Northwind Threat Research"
    date = "2026-11-20"
    description = "Detects a .NET stealer that abuses Microsoft Graph app credentials"
    reference = "https://intel.northwind.example/r/2026-1016"
  strings:
    $c = "ConfidentialClientApplicationBuilder" ascii wide
    $s = "client_secret" ascii wide
    $g = "graph.microsoft.com" ascii wide
  condition:
    uint16(0) == 0x5A4D and dotnet.is_dotnet and 2 of them
}
