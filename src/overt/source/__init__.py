"""Source escrow: canonical snapshots of audited source and pinned toolchain inputs, by digest."""
