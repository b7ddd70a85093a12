"""Lambda function code. Each zip holds `functions/<name>/` plus `functions/shared/`."""
