"""price-relay: exchange websocket trades (or tickers) -> the price webhook, in signed batches,
through an on-disk spool so that nothing is lost while the webhook is unreachable.

Python API (what the project's Invoke task and benchmark call):
- `RelayConfig`, `ExchangeConfig`, `Secret`, `ConfigError` (price_relay.config);
- `Relay(config)`: `await start()`, `await stop()`, `await abort()`, `await run(stop_event)`,
  `counters`, `snapshot()`;
- `run(config) -> int` (blocking, until SIGINT/SIGTERM) and `arun(config) -> int` (async);
- `price_relay.bench.measure(ticks) -> dict`.

It talks to the webhook over HTTP only. The pieces of the pipeline's code it imports are
the webhook's symbol rules (`functions.webhook_processor.symbols`, standard library only),
to refuse at start a symbol the webhook would refuse (see `price_relay.symbols`), and the
list of exchanges (`functions.webhook_processor.exchanges`).
"""

from price_relay.cli import arun, main, run
from price_relay.config import ConfigError, ExchangeConfig, RelayConfig, Secret
from price_relay.relay import Relay

__version__ = "0.1.0"

__all__ = ["ConfigError", "ExchangeConfig", "Relay", "RelayConfig", "Secret", "arun", "main", "run", "__version__"]
