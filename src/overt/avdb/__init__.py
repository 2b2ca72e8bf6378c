"""AV databases: rule sources, deterministic database packages, the rule auditor, deltas and the scanner."""
