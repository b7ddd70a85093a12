"""On-call operations: the dead-letter queue drain."""
