"""The build conveyor: recipes, the bubblewrap sandbox, normalisation, comparison, provenance."""
