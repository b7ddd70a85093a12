"""The embedded local stack: moto's server, terraform apply into it, and a local Lambda runtime."""
