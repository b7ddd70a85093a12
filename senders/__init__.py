"""The sender side of the webhook contract, for the demo, the benchmarks and the tests."""
