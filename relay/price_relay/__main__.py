"""`python -m price_relay` (see price_relay.cli)."""

from price_relay.cli import console_main

console_main()
