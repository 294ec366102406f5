"""Retention: expire rows past their time, and keep the records of processing (GDPR Art. 30)."""
