"""HTTP edges (FastAPI): one router per concept, no logic of their own."""
