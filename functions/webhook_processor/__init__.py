"""The webhook_processor Lambda function."""
