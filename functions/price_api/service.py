"""Price API service: one function-URL request (payload format 2.0, GET) → one JSON response.

Importable without the Lambda's Powertools logger and metrics: the tests, the client's
tests and the benchmarks call `process` directly, with any object that has the low-level
client's `query` and `get_item` (the handler's: `functions.price_api.dynamodb.DynamoReads`);
time it around the call; pass a `ReadLog` as `reads` to get every DynamoDB page it read,
for read units per request.
`handler.py` adds logging and metrics at the edge. Parameters are checked in `routes`;
the reads live with the tables (`functions.shared.price_table.reads` and `.candles`).

Errors: bad input, an unknown path included, is a 400 naming the parameter; throttling that
outlasts the reads' retries, or reads that run out of the request's time (`DeadlineExceeded`,
from reads bound to a deadline: `DynamoReads.until`), is a 503 (retry later); anything else
is a logged 500 whose body says nothing about the internals.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from functions.price_api.dynamodb import THROTTLING_CODES, DeadlineExceeded
from functions.price_api.routes import (
    MAX_TICK_KEY,
    MAX_TICKS,
    MAX_TIME_MS,
    BadRequest,
    Route,
    check_parameters,
    decode_cursor,
    encode_cursor,
    match_route,
    parse_interval,
    parse_limit,
    parse_order,
    parse_range,
    parse_symbols,
    parse_venue,
)
from functions.price_api.settings import Settings
from functions.shared.observability import MetricSink, no_metrics
from functions.shared.price_table.candles import INTERVALS, MAX_CANDLES, Candle, list_symbols, read_candles
from functions.shared.price_table.reads import (
    MeteredClient,
    ReadLog,
    composite_from_items,
    decimal_text,
    key_bounds,
    latest_item,
    latest_items,
    read_ticks,
    tick_from_item,
)

LATEST_THREADS = 8  # measured: 8 concurrent Queries answer latest of 20 as fast as 16, with less CPU
# Reads are latency-sensitive: fewer attempts and shorter timeouts than the writers, so a
# throttled or stuck read answers 503/500 within the function's timeout (15 s suggested:
# 3 attempts x (1 s connect + 3 s read) + backoff) instead of the function URL's bare 502.
# Those are `functions.price_api.dynamodb`'s (ATTEMPTS, CONNECT_ and READ_TIMEOUT_SECONDS).
# A request of several reads (candles; latest's waves of 8) is held to the function's
# remaining time by the handler's deadline (`DynamoReads.until`): a 503 when it runs out.
READ_CONNECTIONS = LATEST_THREADS + 4
_LATEST_POOL = ThreadPoolExecutor(max_workers=LATEST_THREADS, thread_name_prefix="latest")
# Without `to`, candles are read up to a day ahead of now: the webhook refuses ticks dated
# further ahead than that, so no candle can start later.
FUTURE_HORIZON_MS = 24 * 3600 * 1000
BUSY = "service: busy, retry after a second"  # the 503's message: throttled, or out of time

logger = logging.getLogger("price_api")


def respond(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"statusCode": status,
            "headers": {"Content-Type": "application/json", "Cache-Control": "no-store", **(headers or {})},
            "body": json.dumps(body, separators=(",", ":"))}


def symbols_route(route: Route, query: dict[str, str], settings: Settings, client: Any, now_ms: int) -> dict[str, Any]:
    """Every symbol with candles and its venues, from the candle table's registry (one Query, not a
    Scan of ticks): {"symbols": {"BTC-USD": ["binance", "kraken"], ...}}, symbols sorted."""
    return {"symbols": list_symbols(client, settings.candle_table_name)}


def _latest(client: Any, table_name: str, symbol: str, venue: str | None) -> dict[str, Any] | None:
    if venue is not None:
        item = latest_item(client, table_name, symbol, venue=venue)
        return tick_from_item(item) if item else None
    return composite_from_items(latest_items(client, table_name, symbol))


def latest_route(route: Route, query: dict[str, str], settings: Settings, client: Any, now_ms: int) -> dict[str, Any]:
    """Each symbol's latest price, read concurrently; null for a symbol without ticks.

    With `venue`: that venue's newest tick and its indicators. Without: the composite (median of
    the fresh venues' latest prices, `reads.composite_from_items`), naming the venues it used.
    Null rather than absent: the caller sees that the symbol was asked for and has no data,
    and the response has one entry per requested symbol, in request order.
    """
    symbols = parse_symbols(query.get("symbols"))
    venue = parse_venue(query.get("venue"))
    # One pool for the process (a warm function reuses its threads; starting 8 per request
    # cost ~1 ms).
    answers = list(_LATEST_POOL.map(lambda symbol: _latest(client, settings.table_name, symbol, venue), symbols))
    return {"latest": dict(zip(symbols, answers, strict=True))}


def _bound(route: str, symbol: str | None, venue: str | None, **fields: Any) -> dict[str, Any]:
    """The query a cursor belongs to; `n` (the venue) only when given, so a cursor issued before
    reads could name a venue still continues its every-venue query."""
    return {"r": route, "s": symbol, **fields, **({"n": venue} if venue is not None else {})}


def ticks_route(route: Route, query: dict[str, str], settings: Settings, client: Any, now_ms: int) -> dict[str, Any]:
    """Up to `limit` ticks of [from, to) in `order`, every venue's or one's, and a cursor when more follow.

    With a venue, a page may hold fewer ticks than `limit` (even none) and still carry a cursor:
    see `read_ticks`; follow `next` until it is absent.
    """
    order = parse_order(query.get("order"))
    limit = parse_limit(query.get("limit"), MAX_TICKS)
    start, end = parse_range(query)
    venue = parse_venue(query.get("venue"))
    bound = _bound("ticks", route.symbol, venue, f=start, t=end, o=order)
    position = decode_cursor(query.get("cursor"), bound, MAX_TICK_KEY)
    low, high = key_bounds(start, end)
    if position is not None and order == "asc":
        low = position + 1 if low is None else max(low, position + 1)
    elif position is not None:
        high = position - 1 if high is None else min(high, position - 1)
    page = read_ticks(client, settings.table_name, str(route.symbol), low, high, order == "desc", limit,
                      venue=venue)
    body: dict[str, Any] = {"ticks": [tick_from_item(item) for item in page.items]}
    if page.last_key is not None:
        body["next"] = encode_cursor(bound, page.last_key)
    return body


def candle_json(candle: Candle) -> dict[str, Any]:
    """A candle as the API answers it: start in epoch ms, prices and volume as exact decimal strings;
    `volume_count` is how many of its ticks carried a volume (fewer than `count`: a partial sum)."""
    return {"start": candle.start, "open": decimal_text(candle.open), "high": decimal_text(candle.high),
            "low": decimal_text(candle.low), "close": decimal_text(candle.close), "count": candle.count,
            "volume": decimal_text(candle.volume), "volume_count": candle.volume_count}


def candles_route(route: Route, query: dict[str, str], settings: Settings, client: Any,
                  now_ms: int) -> dict[str, Any]:
    """Up to `limit` (≤ 5,000) candles whose start is in [from, to), oldest first, and a cursor beyond:
    one venue's with `venue`, else the composite's.

    Without `from`, from the epoch; without `to`, up to a day ahead of now (see
    FUTURE_HORIZON_MS). The read is `read_candles`': stored candles, plus the forming
    bucket from the registry's prefix and the newest ticks.
    """
    interval = parse_interval(query.get("interval"), INTERVALS)
    limit = parse_limit(query.get("limit"), MAX_CANDLES)
    start, end = parse_range(query)
    venue = parse_venue(query.get("venue"))
    bound = _bound("candles", route.symbol, venue, i=interval, f=start, t=end)
    position = decode_cursor(query.get("cursor"), bound, MAX_TIME_MS)
    first = start or 0
    if position is not None:
        first = max(first, position)
    last = end if end is not None else now_ms + FUTURE_HORIZON_MS
    if first >= last:
        return {"candles": []}
    rows, following = read_candles(client, settings.candle_table_name, settings.table_name, str(route.symbol),
                                   interval, first, last, limit, venue=venue)
    body: dict[str, Any] = {"candles": [candle_json(row) for row in rows]}
    if following is not None and following < last:
        body["next"] = encode_cursor(bound, following)
    return body


ROUTES: dict[str, Callable[[Route, dict[str, str], Settings, Any, int], dict[str, Any]]] = {
    "symbols": symbols_route, "latest": latest_route, "ticks": ticks_route, "candles": candles_route,
}


def process(event: dict[str, Any], settings: Settings, dynamodb: Any, now: float,
            metrics: MetricSink = no_metrics, reads: ReadLog | None = None) -> dict[str, Any]:
    """One GET request → one response; `reads` (optional) receives every DynamoDB page read."""
    started = time.perf_counter()
    log = reads if reads is not None else ReadLog()
    client = MeteredClient(dynamodb, log)
    method = str(event.get("requestContext", {}).get("http", {}).get("method", "GET"))
    path = str(event.get("rawPath") or "/")
    query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    route_name = "none"
    headers: dict[str, str] = {}
    try:
        route = match_route(method, path)
        route_name = route.name
        check_parameters(route, query)
        status, body = 200, ROUTES[route.name](route, query, settings, client, int(now * 1000))
    except BadRequest as error:
        status, body = error.status, {"error": str(error)}
    except DeadlineExceeded as error:
        status, body, headers = 503, {"error": BUSY}, {"Retry-After": "1"}
        logger.warning("reads out of time", extra={"route": route_name, "operation": error.operation})
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in THROTTLING_CODES:
            status, body, headers = 503, {"error": BUSY}, {"Retry-After": "1"}
            logger.warning("reads throttled", extra={"route": route_name, "code": code})
        else:
            status, body = 500, {"error": "service: internal error"}
            logger.exception("read failed", extra={"route": route_name, "code": code})
    except Exception:  # logged with its trace; answered as a 500, never an unhandled error (a bare 502)
        status, body = 500, {"error": "service: internal error"}
        logger.exception("request failed", extra={"route": route_name})
    metrics("Requests", 1)
    if 400 <= status < 500:
        metrics("BadRequests", 1)
    elif status >= 500:
        metrics("ServerErrors", 1)
    metrics("DynamoDBReads", log.requests)
    logger.info("request served", extra={
        "route": route_name, "status": status, "dynamodb_reads": log.requests, "items_read": log.items,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        **({"error": body["error"]} if status < 500 and "error" in body else {})})
    return respond(status, body, headers)
