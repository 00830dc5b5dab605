"""Drill evidence: the report model, its rendering, and the hash chain between reports."""
