"""The price_enricher Lambda function."""
