"""Kraken's own asset and pair names, in one place (the webhook's normalizer and the relay).

Kraken spells assets three ways (support article "API symbols and tickers"; REST
`GET /0/public/Assets` and `GET /0/public/AssetPairs`):
- REST asset codes: the older assets carry an X (crypto) or Z (fiat) prefix, `XXBT`,
  `XETH`, `ZUSD`, `ZEUR`; newer ones are plain (`USDT`, `DOT`, `CHF`);
- `altname`: `XBT` for bitcoin, `XDG` for dogecoin, otherwise the plain code (`ETH`, `USD`);
- websocket v2 names: `BTC/USD`, `DOGE/USD` (v1 and `wsname`: `XBT/USD`, `XDG/USD`).
A REST pair key is the two asset codes run together (`XXBTZUSD`, `XETHZEUR`, `XETHXXBT`)
or, for newer listings, the altnames (`XBTUSDT`, `DOTUSD`, `USDTZUSD`).

Only the legacy X/Z codes and the two altnames differ from the common names; every
other Kraken code is already the common one, so the tables below are complete for the
renaming and stay small.
"""

from __future__ import annotations

import re

# REST asset code or altname -> the common asset name stored by the pipeline.
ASSETS: dict[str, str] = {
    # legacy crypto codes (X prefix), from the Assets endpoint
    "XXBT": "BTC", "XETH": "ETH", "XLTC": "LTC", "XXRP": "XRP", "XXLM": "XLM", "XETC": "ETC",
    "XZEC": "ZEC", "XXMR": "XMR", "XREP": "REP", "XMLN": "MLN", "XXDG": "DOGE",
    # legacy fiat codes (Z prefix)
    "ZUSD": "USD", "ZEUR": "EUR", "ZGBP": "GBP", "ZJPY": "JPY", "ZCAD": "CAD", "ZAUD": "AUD",
    # altnames that are not the common name
    "XBT": "BTC", "XDG": "DOGE",
}
LEGACY_CODES = frozenset(code for code in ASSETS if len(code) == 4 and code[0] in "XZ")
# A REST pair key made of two legacy codes: XXBTZUSD, XETHZEUR, XETHXXBT.
_LEGACY_PAIR = re.compile(r"([XZ][A-Z]{3})([XZ][A-Z]{3})")


class UnknownKrakenName(ValueError):
    """A name in Kraken's legacy spelling that the tables do not hold (a 400, never a guess)."""


def asset(code: str) -> str:
    """The common name of a Kraken asset code or altname (`XXBT`, `XBT` -> `BTC`); others unchanged."""
    return ASSETS.get(code, code)


def legacy_pair(name: str) -> tuple[str, str] | None:
    """(base, quote) of a REST pair key made of two legacy codes (`XXBTZUSD` -> BTC, USD).

    None when `name` is not shaped like one. UnknownKrakenName when it is shaped like one,
    one half is a known legacy code and the other is not (`XXBTZXYZ`): that is a Kraken
    name this table does not know, and inventing a symbol for it would store it where no
    reader asks.
    """
    match = _LEGACY_PAIR.fullmatch(name)
    if match is None:
        return None
    base, quote = match.groups()
    if base in LEGACY_CODES and quote in LEGACY_CODES:
        return ASSETS[base], ASSETS[quote]
    if base in LEGACY_CODES or quote in LEGACY_CODES:
        raise UnknownKrakenName(f"{name!r} is not a Kraken pair this service knows: send it as BASE/QUOTE, "
                                "e.g. BTC/USD")
    return None


def unalias(text: str) -> str:
    """Kraken's altnames at either end of a compact pair: XBTUSD -> BTCUSD, ETHXBT -> ETHBTC."""
    for alias in ("XBT", "XDG"):
        if text.startswith(alias):
            text = ASSETS[alias] + text[len(alias):]
        if text.endswith(alias):
            text = text[: -len(alias)] + ASSETS[alias]
    return text
