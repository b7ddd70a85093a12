"""The price API's request contract: routes, parameters and cursors, as pure functions.

Everything a caller can get wrong is checked here, before any read, and becomes a
`BadRequest` naming the parameter ("limit: must be an integer from 1 to 1000"), so bad
input is always a 400 with a reason and never reaches DynamoDB or a stack trace.

`Route` is a `Record` rather than a frozen dataclass (cold start: see functions.shared.records).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from functions.shared.price_table.keys import key_range
from functions.shared.records import Record

MAX_SYMBOLS = 100
MAX_TICKS = 1000
MAX_CURSOR_CHARS = 1024
# Epoch ms from 1970 to the end of year 9999: what ISO-8601 can say, and a DynamoDB key can hold.
MAX_TIME_MS = 253_402_300_799_999
# The largest tick sort key: the last slot of MAX_TIME_MS (keys.py packs ms x 1000 + slot), ~2.5 x 10^17.
MAX_TICK_KEY = key_range(MAX_TIME_MS, MAX_TIME_MS + 1)[1]
SYMBOL = re.compile(r"^[A-Z0-9]{1,15}-[A-Z0-9]{1,15}$")
# A venue is a stored tick's `exchange`: the webhook accepts [A-Za-z0-9][A-Za-z0-9_.-]* of at most
# 32 characters and stores it lower-cased, so a caller's "Kraken" names the venue "kraken".
VENUE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
CURSOR_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ECHO = 40  # how much of a caller's value an error message repeats


class BadRequest(Exception):
    """A request the API refuses with a 400: "<parameter>: <reason>"."""

    status = 400

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter


class Route(Record):
    __slots__ = ("name", "symbol", "parameters")

    name: str                 # "symbols", "latest", "ticks", "candles"
    symbol: str | None        # the path's symbol, for ticks and candles
    parameters: frozenset[str]

    def __init__(self, name: str, symbol: str | None, parameters: frozenset[str]) -> None:
        self._init(name, symbol, parameters)


ROUTE_PARAMETERS = {
    "symbols": frozenset(),
    "latest": frozenset({"symbols", "venue"}),
    "ticks": frozenset({"from", "to", "order", "limit", "cursor", "venue"}),
    "candles": frozenset({"interval", "from", "to", "limit", "cursor", "venue"}),
}


def _echo(text: str) -> str:
    return json.dumps(text if len(text) <= _ECHO else text[:_ECHO] + "...")


def match_route(method: str, path: str) -> Route:
    """The route of a GET path; an unknown path or any other method is a 400 naming `path` or `method`
    (the read API's contract: bad input, an unknown route included, is a 400 naming the
    parameter, so a client handles one status for every request it got wrong)."""
    if method != "GET":
        raise BadRequest("method", f"{_echo(method)} is not allowed; the API is read-only, use GET")
    parts = [unquote(part) for part in path.strip("/").split("/")]
    if parts[:1] == ["v1"] and len(parts) == 2 and parts[1] in ("symbols", "latest"):
        return Route(parts[1], None, ROUTE_PARAMETERS[parts[1]])
    if parts[:1] == ["v1"] and len(parts) == 3 and parts[1] in ("ticks", "candles"):
        return Route(parts[1], parse_symbol("symbol", parts[2]), ROUTE_PARAMETERS[parts[1]])
    raise BadRequest("path", f"no route {_echo(path)}; routes are /v1/symbols, /v1/latest, "
                             "/v1/ticks/{symbol} and /v1/candles/{symbol}")


def check_parameters(route: Route, query: dict[str, str]) -> None:
    """Refuse unknown parameters: a misspelt `start=` must not silently mean "everything"."""
    for name in sorted(query):
        if name not in route.parameters:
            allowed = ", ".join(sorted(route.parameters)) or "none"
            raise BadRequest(name[:_ECHO], f"unknown parameter for /v1/{route.name} (allowed: {allowed})")


def parse_symbol(parameter: str, text: str) -> str:
    if not SYMBOL.match(text):
        raise BadRequest(parameter, f"{_echo(text)} is not a symbol; use BASE-QUOTE in upper case "
                                    "letters and digits, e.g. BTC-USD")
    return text


def parse_symbols(text: str | None) -> list[str]:
    """1..100 comma-separated symbols, duplicates dropped, request order kept.

    A repeated parameter (symbols=A&symbols=B) arrives as "A,B": a function URL's payload
    format 2.0 joins the values of a repeated key with commas, so both spellings read alike.
    """
    if not text:
        raise BadRequest("symbols", "required: a comma-separated list such as BTC-USD,ETH-USD")
    symbols = list(dict.fromkeys(part.strip() for part in text.split(",")))
    if len(symbols) > MAX_SYMBOLS:
        raise BadRequest("symbols", f"at most {MAX_SYMBOLS} symbols per request, got {len(symbols)}")
    return [parse_symbol("symbols", symbol) for symbol in symbols]


def parse_venue(text: str | None) -> str | None:
    """The venue (a tick's lower-case `exchange`) a read is limited to; None (absent or empty) is every venue."""
    if text is None or text == "":
        return None
    venue = text.lower()
    if not VENUE.match(venue):
        raise BadRequest("venue", f"{_echo(text)} is not a venue; use an exchange id such as binance, "
                                  "coinbase or kraken (letters, digits, '.', '_', '-'; at most 32)")
    return venue


def parse_time(parameter: str, text: str | None) -> int | None:
    """Epoch milliseconds, or ISO-8601 (a naive time is UTC), as epoch ms; None when absent.

    A sub-millisecond ISO time is rounded up: ticks are whole milliseconds, so for both an
    inclusive `from` and an exclusive `to` the next whole millisecond selects the same ticks.
    """
    if text is None or text == "":
        return None
    if re.fullmatch(r"-?[0-9]{1,20}", text):
        value = int(text)
    else:
        value = _iso_ms(parameter, text)
    if not 0 <= value <= MAX_TIME_MS:
        raise BadRequest(parameter, f"{_echo(text)} is outside 1970-01-01 .. 9999-12-31")
    return value


def _iso_ms(parameter: str, text: str) -> int:
    candidates = [text]
    if " " in text:  # an unencoded "+01:00" arrives as " 01:00"
        candidates.append(text.replace(" ", "+"))
    for candidate in candidates:
        try:
            moment = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        micros = (moment - _EPOCH) // timedelta(microseconds=1)
        return -(-micros // 1000)
    raise BadRequest(parameter, f"{_echo(text)} is neither epoch milliseconds nor an ISO-8601 time")


def parse_range(query: dict[str, str]) -> tuple[int | None, int | None]:
    start, end = parse_time("from", query.get("from")), parse_time("to", query.get("to"))
    if start is not None and end is not None and start > end:
        raise BadRequest("from", f"{start} is after to ({end})")
    return start, end


def parse_limit(text: str | None, maximum: int) -> int:
    if text is None or text == "":
        return maximum
    if not re.fullmatch(r"[0-9]{1,7}", text) or not 1 <= int(text) <= maximum:
        raise BadRequest("limit", f"must be an integer from 1 to {maximum}, got {_echo(text)}")
    return int(text)


def parse_order(text: str | None) -> str:
    if text is None or text == "":
        return "asc"
    if text not in ("asc", "desc"):
        raise BadRequest("order", f"must be asc or desc, got {_echo(text)}")
    return text


def parse_interval(text: str | None, intervals: dict[str, int]) -> str:
    names = ", ".join(intervals)
    if not text:
        raise BadRequest("interval", f"required, one of {names}")
    if text not in intervals:
        raise BadRequest("interval", f"{_echo(text)} is not one of {names}")
    return text


def encode_cursor(query: dict[str, Any], position: int) -> str:
    """An opaque continuation: base64url of the query it belongs to and where it stopped.

    Binding the query (route, symbol, from, to, order or interval) into the cursor lets the
    API refuse a cursor replayed against another query instead of returning wrong rows.
    Not signed: a forged position can only select rows of the same query's range.
    """
    data = json.dumps({"v": CURSOR_VERSION, "q": query, "p": position}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def decode_cursor(text: str | None, query: dict[str, Any], maximum: int) -> int | None:
    """The position a cursor continues from, or None without one; 400 unless it belongs to `query`
    and its position is one this API could have issued (0..`maximum`).

    The range check keeps a forged position from reaching DynamoDB: a Number beyond its range
    (10^130, say) would be a ValidationException there, a 500 and an ERROR line that pages on-call.
    """
    if text is None or text == "":
        return None
    if len(text) > MAX_CURSOR_CHARS or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise BadRequest("cursor", "malformed; pass back the `next` value of the previous response unchanged")
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        raise BadRequest("cursor", "malformed; pass back the `next` value of the previous response "
                                   "unchanged") from None
    if not isinstance(data, dict) or set(data) != {"v", "q", "p"} or data["v"] != CURSOR_VERSION or \
            not isinstance(data["p"], int) or isinstance(data["p"], bool):
        raise BadRequest("cursor", "malformed; pass back the `next` value of the previous response unchanged")
    if data["q"] != query:
        raise BadRequest("cursor", "belongs to another query; repeat the same path and parameters "
                                   "(except limit) with it")
    position: int = data["p"]
    if not 0 <= position <= maximum:
        raise BadRequest("cursor", "position out of range; pass back the `next` value of the previous "
                                   "response unchanged")
    return position
