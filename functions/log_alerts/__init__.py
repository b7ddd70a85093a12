"""The log_alerts Lambda function."""
