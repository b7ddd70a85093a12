"""Evidence: benchmarks, the cost model, item sizes and capacity units, their reports."""
