"""Signed attestations: DSSE envelopes, in-toto Statements, SLSA Provenance and VSA predicates, k-of-n verify."""
