"""The price API: the pipeline's read side (latest ticks, tick ranges, candles) behind a function URL."""
