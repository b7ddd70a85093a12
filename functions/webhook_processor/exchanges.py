"""The exchanges whose own messages the pipeline reads: one owner for the set.

The webhook parses each one's native ticker (`?format=<exchange>`, payloads.py), the relay
streams from each (relay/price_relay/exchanges), and an environment's `relay` section may
name only these (environments/config.py). Standard library only, like `symbols`: the relay
imports it. Adding an exchange means a parser here, an adapter in the relay, and this name.
"""

from __future__ import annotations

EXCHANGES: tuple[str, ...] = ("binance", "coinbase", "kraken")
