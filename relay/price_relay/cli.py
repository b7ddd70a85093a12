"""`python -m price_relay`: parse options, validate, run until SIGINT/SIGTERM.

Every configuration error ends the process with one line on stderr and exit code 2.
The secret comes from an environment variable (`--secret-env`, default RELAY_SECRET) or
a file (`--secret-file`); there is no option that takes it, and an unknown option's
value is never echoed (someone may have typed `--secret <value>`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from price_relay.config import DEFAULT_SECRET_ENV, ConfigError, RelayConfig, read_config_file
from price_relay.exchanges import EXCHANGES
from price_relay.observability import LOGGER_NAME, StatusLine, configure_logging
from price_relay.relay import Relay

PROG = "price-relay"
EPILOG = f"""\
The webhook secret is read from the environment variable named by --secret-env
(default {DEFAULT_SECRET_ENV}) or from --secret-file; it is never taken on the command line.

--config FILE is a JSON object with the same settings, several exchanges at once:
  {{"webhook_url": "https://...", "source": "relay-1", "secret_env": "{DEFAULT_SECRET_ENV}",
   "spool": "relay.db", "batch_size": 100, "batch_seconds": 1.0,
   "exchanges": [{{"exchange": "binance", "symbols": ["BTCUSDT", "ETHUSDT"], "channel": "trade"}},
                 {{"exchange": "kraken", "symbols": ["BTC/USD"], "ws_url": "wss://..."}}]}}
Options given on the command line override the file's values; --exchange, --symbols
and --ws-url cannot be combined with a file's "exchanges".

Exit codes: 0 stopped cleanly, 1 an internal failure, 2 bad configuration."""


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports errors in one line (no usage block) and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            # Show option names only: a stray value may be a secret typed on the command line.
            names = sorted({item.split("=", 1)[0] for item in extras if item.startswith("-")})
            shown = ", ".join(names) if names else f"{len(extras)} positional value(s)"
            self.error(f"unrecognized arguments: {shown} (values not shown)")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    """The command line; every option has help text."""
    parser = _OneLineParser(prog=PROG, description="Relay exchange websocket tickers to the price webhook in "
                            "signed batches, spooled on disk so that nothing is lost while the webhook is down.",
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                            allow_abbrev=False)  # `--secret x` must be unknown, not a prefix of --secret-env
    parser.add_argument("--exchange", choices=sorted(EXCHANGES),
                        help="exchange to read (one; use --config for several)")
    parser.add_argument("--symbols", help="comma-separated symbols as the exchange writes them: "
                        "binance BTCUSDT, coinbase BTC-USD, kraken BTC/USD")
    parser.add_argument("--channel", choices=["trade", "ticker"],
                        help="trade (default): the exchange's trade channel (Binance aggTrade, Coinbase matches, "
                        "Kraken trade), one tick per symbol per window with the traded quantity as volume; "
                        "ticker: its ticker channel, forwarded as received")
    parser.add_argument("--trade-window-seconds", type=float,
                        help="trade channel: at most one tick per symbol per this many seconds (default 1.0)")
    parser.add_argument("--webhook-url", help="the webhook's URL (http or https); ?format=<exchange> is added")
    parser.add_argument("--source", help="source id sent as X-Source; the webhook knows its secret by it")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--secret-env", metavar="VAR", help=f"environment variable holding the webhook secret "
                        f"(default {DEFAULT_SECRET_ENV})")
    secret.add_argument("--secret-file", metavar="PATH",
                        help="file holding the webhook secret (trailing newline ignored)")
    parser.add_argument("--spool", metavar="PATH",
                        help="SQLite spool file (created if missing; its directory must exist)")
    parser.add_argument("--batch-size", type=int, help="send a batch at this many ticks (default 100, at most 1000)")
    parser.add_argument("--batch-seconds", type=float, help="or when its oldest tick is this old (default 1.0)")
    parser.add_argument("--ws-url", help="websocket URL instead of the exchange's public one (tests, private gateways)")
    parser.add_argument("--silence-seconds", type=float, help="a stream silent this long is reconnected (default 30)")
    parser.add_argument("--spool-max", type=int, help="spool bound in ticks (default 1,000,000): a loud warning at "
                        "80%%, new ticks refused and counted as dropped at the bound")
    parser.add_argument("--set-aside-max", type=int, help="set-aside rows kept (ticks the webhook refused; "
                        "default 10,000): the oldest go first, and any older than 7 days")
    parser.add_argument("--max-connection-seconds", type=float, help="replace a connection after this long "
                        "(default: binance 85800 = 23 h 50 min, before its 24 h limit; others never)")
    parser.add_argument("--config", metavar="FILE",
                        help="JSON config file (see below); lists several exchanges at once")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="log level of the JSON log lines on stderr (default INFO)")
    parser.add_argument("--no-status", action="store_true", help="no live status line even when stdout is a terminal")
    return parser


_GLOBAL_OPTIONS = {"webhook_url": "webhook_url", "source": "source", "batch_size": "batch_size",
                   "batch_seconds": "batch_seconds", "silence_seconds": "silence_seconds", "spool_max": "spool_max",
                   "trade_window_seconds": "trade_window_seconds", "set_aside_max": "set_aside_max"}


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> RelayConfig:
    """Merge the config file (if any) and the options into a validated RelayConfig."""
    data: dict[str, Any] = {}
    base_dir = None
    if args.config:
        data = read_config_file(args.config)
        base_dir = Path(args.config).expanduser().resolve().parent
    for option, key in _GLOBAL_OPTIONS.items():
        value = getattr(args, option)
        if value is not None:
            data[key] = value
    if args.spool is not None:
        data["spool"] = str(Path(args.spool).expanduser().resolve())
    if args.secret_env is not None or args.secret_file is not None:
        data.pop("secret_env", None)
        data.pop("secret_file", None)
        if args.secret_env is not None:
            data["secret_env"] = args.secret_env
        else:
            data["secret_file"] = str(Path(args.secret_file).expanduser().resolve())
    if args.exchange or args.symbols or args.ws_url or args.max_connection_seconds or args.channel:
        if "exchanges" in data:
            raise ConfigError("--exchange/--symbols/--ws-url/--max-connection-seconds/--channel cannot be combined "
                              "with the config file's exchanges")
        if not args.exchange or not args.symbols:
            raise ConfigError("--exchange and --symbols are required (or a --config file with exchanges)")
        exchange: dict[str, Any] = {"exchange": args.exchange, "symbols": args.symbols.split(",")}
        if args.ws_url:
            exchange["ws_url"] = args.ws_url
        if args.max_connection_seconds:
            exchange["max_connection_seconds"] = args.max_connection_seconds
        if args.channel:
            exchange["channel"] = args.channel
        data["exchanges"] = [exchange]
    if "exchanges" not in data:
        raise ConfigError("--exchange and --symbols are required (or a --config file with exchanges)")
    for required, option in (("webhook_url", "--webhook-url"), ("source", "--source"), ("spool", "--spool")):
        if required not in data:
            raise ConfigError(f"{option} is required")
    return RelayConfig.from_mapping(data, base_dir=base_dir, environ=environ)


async def arun(config: RelayConfig, *, status_line: bool | None = None, stop: asyncio.Event | None = None) -> int:
    """Run the relay in the current event loop until SIGINT/SIGTERM (or `stop`), then drain.

    Returns 0 after a clean stop, 1 after an internal failure. Raises ConfigError when
    the spool cannot be opened (locked by another relay, unwritable)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread: the caller stops us with `stop`
    relay = Relay(config)
    show = sys.stdout.isatty() if status_line is None else status_line
    status = StatusLine(relay.status_text) if show else None
    try:
        await relay.start()
        if status is not None:
            status.start()
        return await relay.run(stop)
    finally:
        if status is not None:
            status.stop()
        for signum in handled:
            loop.remove_signal_handler(signum)


def run(config: RelayConfig, *, status_line: bool | None = None, log_level: str = "INFO") -> int:
    """Blocking entry point (the Invoke task's): run until SIGINT/SIGTERM; see `arun`.

    Sets up the JSON log lines on stderr unless the caller already gave the
    `price_relay` logger a handler."""
    package_logger = logging.getLogger(LOGGER_NAME)
    handler = None if package_logger.handlers else configure_logging(log_level, secret=config.secret.reveal())
    try:
        return asyncio.run(arun(config, status_line=status_line))
    finally:
        if handler is not None:
            package_logger.removeHandler(handler)
            handler.close()


def main(argv: list[str] | None = None) -> int:
    """The command line: returns the exit code (2 with one stderr line on bad configuration)."""
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    handler = configure_logging(args.log_level, secret=config.secret.reveal())
    try:
        return run(config, status_line=False if args.no_status else None)
    except ConfigError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    finally:
        logging.getLogger(LOGGER_NAME).removeHandler(handler)
        handler.close()


def console_main() -> None:
    """The `price-relay` console script."""
    raise SystemExit(main())
