"""Symbol pairs: how a sender's symbol becomes the stored `BASE-QUOTE`.

Standard library only (no boto3): the relay imports it to check its symbols at start
against exactly the rules the webhook applies, so a symbol the webhook would always
refuse (or store under an invented name) is refused before a single tick is spooled.
"""

from __future__ import annotations

import re

from functions.webhook_processor import kraken_names

# Quote assets recognized at the end of a separator-less pair such as BTCUSDT. Some end with
# another (TUSD, BUSD and FDUSD end with USD), so DOTUSD could be DO-TUSD or DOT-USD: such a
# symbol is ambiguous unless COMPACT_PAIRS names its market.
KNOWN_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "DAI", "USD", "EUR", "GBP", "JPY", "TRY", "BRL",
                "AUD", "CAD", "CHF", "BTC", "ETH", "BNB", "SOL")
# Well-known compact pairs, as exchanges and TradingView spell them, whose split is ambiguous by
# KNOWN_QUOTES alone (or is listed to be explicit). Key: the symbol without exchange prefix, upper case.
COMPACT_PAIRS: dict[str, tuple[str, str]] = {
    # Kraken altnames (REST `AssetPairs` altname, TradingView KRAKEN:<altname>)
    "XBTUSD": ("BTC", "USD"),     # Kraken XXBTZUSD / altname XBTUSD; TradingView KRAKEN:XBTUSD
    "XBTUSDT": ("BTC", "USDT"),   # Kraken XBTUSDT
    "ETHUSD": ("ETH", "USD"),     # Kraken altname ETHUSD; TradingView COINBASE:ETHUSD, BITSTAMP:ETHUSD
    "DOTUSD": ("DOT", "USD"),     # Kraken DOTUSD (REST key and altname); Coinbase DOT-USD as COINBASE:DOTUSD
    "USDTUSD": ("USDT", "USD"),   # Kraken altname USDTUSD; Coinbase USDT-USD as COINBASE:USDTUSD
    "USDTZUSD": ("USDT", "USD"),  # Kraken REST result key of USDT/USD
    "GRTUSD": ("GRT", "USD"),     # Kraken GRTUSD; Coinbase GRT-USD as COINBASE:GRTUSD
    "BATUSD": ("BAT", "USD"),     # Kraken BATUSD; Coinbase BAT-USD
    "FETUSD": ("FET", "USD"),     # Kraken FETUSD; Coinbase FET-USD
    "APTUSD": ("APT", "USD"),     # Kraken APTUSD; Coinbase APT-USD
    "ARBUSD": ("ARB", "USD"),     # Kraken ARBUSD; Coinbase ARB-USD as COINBASE:ARBUSD
    "SHIBUSD": ("SHIB", "USD"),   # Kraken SHIBUSD; Coinbase SHIB-USD as COINBASE:SHIBUSD
    "BNBUSD": ("BNB", "USD"),     # Binance.US BNBUSD (TradingView BINANCEUS:BNBUSD)
    "QNTUSD": ("QNT", "USD"),     # Kraken QNTUSD; Coinbase QNT-USD
    "BNTUSD": ("BNT", "USD"),     # Kraken BNTUSD; Coinbase BNT-USD
    "OXTUSD": ("OXT", "USD"),     # Kraken OXTUSD; Coinbase OXT-USD
    "TRBUSD": ("TRB", "USD"),     # Kraken TRBUSD; Coinbase TRB-USD
    "MNTUSD": ("MNT", "USD"),     # Kraken MNTUSD
    # Binance spot symbols (GET /api/v3/exchangeInfo) quoted in TUSD, BUSD and FDUSD
    "BTCTUSD": ("BTC", "TUSD"), "ETHTUSD": ("ETH", "TUSD"),
    "BTCBUSD": ("BTC", "BUSD"), "ETHBUSD": ("ETH", "BUSD"), "BNBBUSD": ("BNB", "BUSD"),  # delisted 2023-12
    "BTCFDUSD": ("BTC", "FDUSD"), "ETHFDUSD": ("ETH", "FDUSD"), "BNBFDUSD": ("BNB", "FDUSD"),
    "SOLFDUSD": ("SOL", "FDUSD"), "XRPFDUSD": ("XRP", "FDUSD"), "DOGEFDUSD": ("DOGE", "FDUSD"),
}
# An optional TradingView exchange prefix, then an asset, or two assets with one separator.
_SYMBOL = re.compile(r"(?:[A-Z0-9_]{1,20}:)?(?P<base>[A-Z0-9]{1,20})(?:[-/_](?P<quote>[A-Z0-9]{1,20}))?")
_ASSET = re.compile(r"[A-Z0-9]{1,15}")
_NO_QUOTE = "0NOQUOTE0"  # exchange_pair's stand-in default quote: no real asset is named so



def normalize_symbol(raw: str, default_quote: str) -> str:
    """`BTCUSDT`→`BTC-USDT`, `XBT/USD`→`BTC-USD`, `btc`→`BTC-<default quote>`, `KRAKEN:XBTUSD`→`BTC-USD`,
    `XXBTZUSD`→`BTC-USD` (Kraken's REST pair key).

    Raises ValueError when the symbol is malformed or its split is ambiguous: a wrong pair is
    worse than a rejected one. The text is checked as sent (ASCII only, no whitespace or control
    character anywhere, full-string anchors), so `"BTC\\n/USD"` or `"ßTC"` cannot become a pair.
    A name in Kraken's legacy spelling that `kraken_names` does not hold is refused, never split.
    """
    base, quote = _pair(raw, default_quote)
    if not _ASSET.fullmatch(base) or not _ASSET.fullmatch(quote):
        raise ValueError("assets must be letters and digits (at most 15)")
    if base == quote:
        raise ValueError("base and quote must differ")
    return f"{base}-{quote}"


def exchange_pair(raw: str) -> str:
    """The stored symbol of an exchange's own pair name (the relay checks its symbols with this
    at start): `normalize_symbol`'s rules, except that a pair must name its quote; a name whose
    quote the rules cannot find would be stored under an invented `<name>-<default quote>`."""
    symbol = normalize_symbol(raw, _NO_QUOTE)
    if symbol.endswith("-" + _NO_QUOTE):
        raise ValueError(f"{raw[:40]!r} ends in no quote asset the webhook knows "
                         f"({', '.join(KNOWN_QUOTES)}): it would be stored under an invented symbol")
    return symbol


def _pair(raw: str, default_quote: str) -> tuple[str, str]:
    if any(char.isspace() or not char.isprintable() for char in raw):
        raise ValueError("must not contain whitespace or control characters")
    if not raw.isascii():
        raise ValueError("must be ASCII letters and digits")
    match = _SYMBOL.fullmatch(raw.upper())
    if match is None:
        raise ValueError("must be an asset like BTC or a pair like BTC-USD (optionally EXCHANGE:PAIR)")
    if match["quote"] is not None:
        return kraken_names.asset(match["base"]), kraken_names.asset(match["quote"])
    legacy = kraken_names.legacy_pair(match["base"])  # UnknownKrakenName is a ValueError
    if legacy is not None:
        return legacy
    base, quote = _split_compact(match["base"], default_quote)
    return kraken_names.asset(base), kraken_names.asset(quote)


def _split_compact(text: str, default_quote: str) -> tuple[str, str]:
    """Split a separator-less symbol; a lone asset takes the default quote."""
    if text in COMPACT_PAIRS:
        return COMPACT_PAIRS[text]
    unaliased = kraken_names.unalias(text)
    if unaliased in COMPACT_PAIRS:
        return COMPACT_PAIRS[unaliased]
    splits = [(unaliased[: -len(quote)], quote) for quote in KNOWN_QUOTES
              if unaliased.endswith(quote) and len(unaliased) - len(quote) >= 2]
    if not splits:
        return unaliased, default_quote
    if len(splits) > 1:
        options = " or ".join(f"{base}-{quote}" for base, quote in sorted(splits))
        raise ValueError(f"{text[:20]!r} is ambiguous ({options}): send it with a separator, e.g. BASE-QUOTE")
    return splits[0]
