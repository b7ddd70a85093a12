"""The relay's configuration: validated once, at start, with one-line errors.

Dataclasses rather than pydantic keep the package's dependencies to websockets and rich;
the checks are few and each error names the setting and what is allowed. The webhook
secret is read from an environment variable or a file, never from the command line or
the config file, and is held in a `Secret` whose repr never shows it.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from price_relay.exchanges import get_exchange
from price_relay.exchanges.base import CHANNELS
from price_relay.symbols import stored_symbol

DEFAULT_SECRET_ENV = "RELAY_SECRET"  # noqa: S105 - the variable's name, not a secret
MAX_WEBHOOK_UPDATES = 1000            # the webhook's limit per request (docs/webhook-contract.md, "Bodies")
MAX_WEBHOOK_BODY = 1024 * 1024        # and its body limit
_SOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ConfigError(ValueError):
    """A bad setting; its message is one line and never contains a secret."""


class Secret:
    """The webhook's HMAC key. Its str/repr are masked so it cannot reach a log by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError("the webhook secret is empty")
        self._value = value.strip().encode("utf-8")

    def reveal(self) -> bytes:
        """The key bytes, for the HMAC only."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def redact_url(url: str) -> str:
    """A URL fit for a log line: no user info, no query (either could carry a credential)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _check_url(url: Any, schemes: tuple[str, ...], setting: str) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{setting}: a URL is required")
    text: str = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"{setting}: not a valid URL") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{setting}: must be an absolute {' or '.join(s + '://' for s in schemes)} URL "
                          f"(got {redact_url(text)[:80]!r})")
    if any(c.isspace() for c in text):
        raise ConfigError(f"{setting}: must not contain whitespace")
    return text


def _positive(value: Any, setting: str, *, integer: bool = False, maximum: float | None = None) -> Any:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{setting}: must be a positive {'integer' if integer else 'number'} (got {value!r})")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{setting}: must be at most {maximum:g} (got {value!r})")
    return value


@dataclass(frozen=True)
class ExchangeConfig:
    """One exchange stream: which symbols, and optionally where (`ws_url`) and how long a
    connection may live before it is replaced (`max_connection_seconds`; Binance's
    default is 23 h 50 min, before its own 24 h cut)."""

    exchange: str
    symbols: tuple[str, ...]
    ws_url: str | None = None
    max_connection_seconds: float | None = None
    # "trade" (default): the exchange's trade channel, aggregated into ticks with volume;
    # "ticker": its ticker channel, forwarded as received (the rolling figure is volume_24h).
    channel: str = "trade"

    def __post_init__(self) -> None:
        try:
            spec = get_exchange(self.exchange) if isinstance(self.exchange, str) else get_exchange(repr(self.exchange))
        except ValueError as error:
            raise ConfigError(f"exchange: {error}") from None
        object.__setattr__(self, "exchange", spec.name)
        raw = self.symbols.split(",") if isinstance(self.symbols, str) else self.symbols
        if not isinstance(raw, (list, tuple)) or not all(isinstance(s, str) for s in raw):
            raise ConfigError(f"{spec.name}.symbols: must be a list of symbols like {spec.symbol_example}")
        symbols: list[str] = []
        for item in raw:
            if not item.strip():
                continue
            try:
                symbol = spec.normalize_symbol(item)
                stored_symbol(symbol)  # the webhook's own rules: refused here, not set aside forever
            except ValueError as error:
                raise ConfigError(f"{spec.name}.symbols: {error}") from None
            if symbol not in symbols:
                symbols.append(symbol)
        if not symbols:
            raise ConfigError(f"{spec.name}.symbols: at least one symbol is required, like {spec.symbol_example}")
        object.__setattr__(self, "symbols", tuple(symbols))
        if self.ws_url is not None:
            object.__setattr__(self, "ws_url", _check_url(self.ws_url, ("ws", "wss"), f"{spec.name}.ws_url"))
        if self.max_connection_seconds is not None:
            _positive(self.max_connection_seconds, f"{spec.name}.max_connection_seconds")
        if self.channel not in CHANNELS:
            raise ConfigError(f"{spec.name}.channel: must be one of {', '.join(CHANNELS)} "
                              f"(got {str(self.channel)[:20]!r})")

    @property
    def stored_symbols(self) -> dict[str, str]:
        """The exchange's spelling -> the symbol the webhook stores (BTCUSDT -> BTC-USDT)."""
        return {symbol: stored_symbol(symbol) for symbol in self.symbols}

    @property
    def connection_limit_seconds(self) -> float | None:
        """How long a connection may live: the setting, else the exchange's default."""
        return self.max_connection_seconds or get_exchange(self.exchange).default_max_connection_seconds


@dataclass(frozen=True)
class RelayConfig:
    """Everything the relay needs. Build it in code (tests, the Invoke task) or with
    `RelayConfig.from_mapping` from a JSON config file; both validate the same way."""

    exchanges: tuple[ExchangeConfig, ...]
    webhook_url: str
    source: str
    secret: Secret = field(repr=False)
    spool_path: Path
    batch_size: int = 100
    batch_seconds: float = 1.0
    silence_seconds: float = 30.0
    spool_max: int = 1_000_000
    # FULL: every committed tick survives a power loss, not only a process crash
    # (NORMAL in WAL mode may lose the last commits on power loss). Ticks are committed
    # in groups, so the fsync per commit costs little; see README "Guarantees".
    spool_synchronous: str = "FULL"
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    http_timeout_seconds: float = 10.0
    kraken_ping_seconds: float = 20.0
    drain_seconds: float = 5.0
    stats_seconds: float = 60.0
    max_body_bytes: int = 900_000
    # Trade channels: at most one tick per symbol per window of trade time.
    trade_window_seconds: float = 1.0
    # Set-aside rows (ticks the webhook refused) are kept for an operator, but bounded:
    # the oldest beyond set_aside_max go, and any older than set_aside_max_age_seconds.
    set_aside_max: int = 10_000
    set_aside_max_age_seconds: float = 7 * 86400.0

    def __post_init__(self) -> None:
        if isinstance(self.secret, str):
            object.__setattr__(self, "secret", Secret(self.secret))
        if not isinstance(self.secret, Secret):
            raise ConfigError("secret: must be a price_relay.config.Secret")
        exchanges = tuple(self.exchanges)
        if not exchanges or not all(isinstance(e, ExchangeConfig) for e in exchanges):
            raise ConfigError("exchanges: at least one exchange is required")
        names = [e.exchange for e in exchanges]
        if len(set(names)) != len(names):
            raise ConfigError(f"exchanges: each exchange may be listed once (got {', '.join(names)})")
        object.__setattr__(self, "exchanges", exchanges)
        object.__setattr__(self, "webhook_url", _check_url(self.webhook_url, ("http", "https"), "webhook_url"))
        if not isinstance(self.source, str) or not _SOURCE.fullmatch(self.source.strip()):
            raise ConfigError("source: must be 1-100 letters, digits or _ . : @ - (it is sent as X-Source)")
        object.__setattr__(self, "source", self.source.strip())
        if not isinstance(self.spool_path, (str, Path)) or not str(self.spool_path).strip():
            raise ConfigError("spool: a file path is required")
        spool = Path(self.spool_path).expanduser()
        if spool.is_dir():
            raise ConfigError(f"spool: {spool} is a directory; give a file path")
        if not spool.parent.is_dir():
            raise ConfigError(f"spool: the directory {spool.parent} does not exist")
        object.__setattr__(self, "spool_path", spool)
        _positive(self.batch_size, "batch_size", integer=True, maximum=MAX_WEBHOOK_UPDATES)
        _positive(self.batch_seconds, "batch_seconds", maximum=3600)
        _positive(self.silence_seconds, "silence_seconds")
        _positive(self.spool_max, "spool_max", integer=True)
        if self.spool_synchronous not in ("FULL", "NORMAL"):
            raise ConfigError("spool_synchronous: must be FULL or NORMAL")
        for name in ("backoff_base_seconds", "backoff_max_seconds", "http_timeout_seconds", "kraken_ping_seconds",
                     "stats_seconds"):
            _positive(getattr(self, name), name)
        if self.backoff_max_seconds < self.backoff_base_seconds:
            raise ConfigError("backoff_max_seconds: must be at least backoff_base_seconds")
        if isinstance(self.drain_seconds, bool) or not isinstance(self.drain_seconds, (int, float)) \
                or self.drain_seconds < 0:
            raise ConfigError("drain_seconds: must be a number >= 0")
        _positive(self.max_body_bytes, "max_body_bytes", integer=True, maximum=MAX_WEBHOOK_BODY - 1024)
        _positive(self.trade_window_seconds, "trade_window_seconds", maximum=60)
        if int(self.trade_window_seconds * 1000) < 1:
            raise ConfigError("trade_window_seconds: must be at least 0.001")
        _positive(self.set_aside_max, "set_aside_max", integer=True)
        _positive(self.set_aside_max_age_seconds, "set_aside_max_age_seconds")

    def exchange(self, name: str) -> ExchangeConfig:
        """The configuration of one exchange by name."""
        return next(e for e in self.exchanges if e.exchange == name)

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, base_dir: Path | None = None,
                     environ: Mapping[str, str] | None = None) -> RelayConfig:
        """A config from a JSON object (the `--config` file's shape, see README).

        `secret_env` (default RELAY_SECRET) or `secret_file` says where the secret is;
        a `secret` key is refused so that the secret never sits in a config file.
        """
        if not isinstance(data, dict):
            raise ConfigError("config: must be a JSON object")
        data = dict(data)
        if "secret" in data:
            raise ConfigError("secret: is never read from the config file; use secret_env or secret_file")
        secret = load_secret(data.pop("secret_env", None), data.pop("secret_file", None), base_dir=base_dir,
                             environ=environ)
        allowed = {f.name for f in fields(cls)} - {"secret", "spool_path", "exchanges"} | {"spool", "exchanges"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"config: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}, "
                              "secret_env, secret_file")
        raw_exchanges = data.pop("exchanges", None)
        if not isinstance(raw_exchanges, list) or not raw_exchanges:
            raise ConfigError("exchanges: must be a non-empty list of {\"exchange\", \"symbols\", ...} objects")
        exchanges = []
        exchange_keys = {f.name for f in fields(ExchangeConfig)}
        for index, item in enumerate(raw_exchanges):
            if not isinstance(item, dict):
                raise ConfigError(f"exchanges[{index}]: must be an object")
            extra = sorted(set(item) - exchange_keys)
            if extra:
                raise ConfigError(f"exchanges[{index}]: unknown key {extra[0]!r}; allowed: "
                                  f"{', '.join(sorted(exchange_keys))}")
            if "exchange" not in item or "symbols" not in item:
                raise ConfigError(f"exchanges[{index}]: 'exchange' and 'symbols' are required")
            exchanges.append(ExchangeConfig(**item))
        spool = data.pop("spool", None)
        if spool is None:
            raise ConfigError("spool: a file path is required")
        spool_path = Path(str(spool)).expanduser()
        if base_dir is not None and not spool_path.is_absolute():
            spool_path = base_dir / spool_path
        for required in ("webhook_url", "source"):
            if required not in data:
                raise ConfigError(f"{required}: is required")
        return cls(exchanges=tuple(exchanges), secret=secret, spool_path=spool_path, **data)


def load_secret(secret_env: str | None, secret_file: str | os.PathLike[str] | None, *,
                base_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> Secret:
    """The secret from a file (if named) or else an environment variable (RELAY_SECRET by default)."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    if secret_env is not None and secret_file is not None:
        raise ConfigError("secret: give either secret_env or secret_file, not both")
    if secret_file is not None:
        path = Path(secret_file).expanduser()
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"secret_file: cannot read {path}: {error.strerror or type(error).__name__}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"secret_file: {path} is not UTF-8 text") from None
        if not text.strip():
            raise ConfigError(f"secret_file: {path} is empty")
        return Secret(text)
    name = secret_env or DEFAULT_SECRET_ENV
    if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
        raise ConfigError("secret_env: must be an environment variable name")
    value = env.get(name, "")
    if not value.strip():
        # Name the variable only if it looks like one: a secret pasted as --secret-env's
        # value must not come back in the error.
        shown = name if re.fullmatch(r"[A-Z_][A-Z0-9_]{0,63}", name) else "the variable named by --secret-env"
        raise ConfigError(f"the webhook secret is missing: set {shown} or use --secret-file")
    return Secret(value)


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object in a `--config` file, or a one-line ConfigError."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"config: cannot read {file}: {error.strerror or type(error).__name__}") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"config: {file} is not valid JSON: {str(error)[:100]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config: {file} must hold a JSON object")
    return data
