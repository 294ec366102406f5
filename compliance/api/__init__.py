"""The compliance API: PII findings (stewards decide them), column policies, a dataset's PII summary."""
