"""The quality API: checks (Operators manage them), their results, the quarantine; a dataset's check status."""
