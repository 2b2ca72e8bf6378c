"""Keys bound to a role and a jurisdiction: signer URIs, the registry, the signing policy, rotation, audit."""
