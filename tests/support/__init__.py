"""Test-only helpers: fault injection, the IAM policy scan, table and stream fixtures."""
