"""The Python client end to end: the API's `process` behind a loopback function URL that checks SigV4.

The stand-in answers 403 to anything not signed by the test credentials for service
`lambda` in us-east-1, as a function URL with AWS_IAM auth does, so these tests prove the
client signs exactly what it sends (path, canonical query, host, date, session token).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from emulator.sigv4 import verify_sigv4
from functions.price_api import service as api
from functions.price_api.settings import Settings
from functions.shared.candles import Candle as StoredCandle
from functions.shared.price_table import candles
from tests.support.api_reads import reads_for
from tests.test_price_api import CANDLE_TICKS, CANDLES, D0, T0, TICKS, expected_candles, put_tick

if importlib.util.find_spec("price_client") is None:  # not installed (pip install -e ./client): the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))

from price_client import Candle, PriceApiError, PriceClient, Tick, to_epoch_ms

REGION = "us-east-1"
CREDENTIALS = Credentials("AKIDPRICECLIENTTEST", "price-client-test-secret", "price-client-session-token")
SETTINGS = Settings(table_name=TICKS, candle_table_name=CANDLES)


class SignedFunctionUrl:
    """`service.process` behind 127.0.0.1, authenticating like a function URL with AWS_IAM auth."""

    def __init__(self, dynamodb: Any) -> None:
        self.reads: Any = reads_for(dynamodb)  # as the handler reads
        self.requests: list[str] = []
        self.forbidden = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self) -> None:
                outer.serve(self)

            do_GET = do_POST = do_DELETE = handle_one

            def log_message(self, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        headers = dict(request.headers.items())
        url = f"http://{request.headers.get('Host', '')}{request.path}"
        if not verify_sigv4(request.command, url, headers, body, CREDENTIALS, REGION, "lambda"):
            self.forbidden += 1
            self._reply(request, 403, {}, json.dumps({"Message": "Forbidden"}).encode())
            return
        self.requests.append(request.path)
        parts = urlsplit(request.path)
        query: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):  # repeated keys: comma-joined, as AWS does
            query[key] = f"{query[key]},{value}" if key in query else value
        event = {"version": "2.0", "routeKey": "$default", "rawPath": parts.path, "rawQueryString": parts.query,
                 "headers": {k.lower(): v for k, v in headers.items()}, "queryStringParameters": query or None,
                 "requestContext": {"http": {"method": request.command, "path": parts.path}},
                 "body": body.decode(), "isBase64Encoded": False}
        response = api.process(event, SETTINGS, self.reads, time.time())
        self._reply(request, response["statusCode"], response["headers"], response["body"].encode())

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes) -> None:
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def __enter__(self) -> SignedFunctionUrl:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def signed_session(credentials: Credentials = CREDENTIALS) -> botocore.session.Session:
    session = botocore.session.Session()
    session.set_credentials(credentials.access_key, credentials.secret_key, credentials.token)
    return session


pytestmark = pytest.mark.tables(ticks=SETTINGS.table_name, candles=SETTINGS.candle_table_name)  # `dynamodb`


@pytest.fixture
def ticks(dynamodb):
    """BTC-USD: 7 ticks one second apart (two exchanges at T0 + 3 s); ETH-USD: one enriched tick."""
    for i in range(6):
        put_tick(dynamodb, "BTC-USD", T0 + i * 1000, f"3700{i}.0{i}")
    put_tick(dynamodb, "BTC-USD", T0 + 3000, "37003.5", exchange="kraken")
    put_tick(dynamodb, "ETH-USD", T0 + 500, "2045.123456789012345678", volume="3.25",
             indicators={"sma_5": "2040.5", "ema_12": "2041.25", "change_pct": "0.125"})
    return dynamodb


@pytest.fixture
def candle_ticks(ticks):
    """SOL-USD with the API tests' candle ticks, maintained as the enricher does; returns (key, price, venue,
    volume) tuples."""
    keys = [put_tick(ticks, "SOL-USD", D0 + offset, price, venue, volume=volume)
            for offset, price, venue, volume in CANDLE_TICKS]
    candles.maintain(ticks, CANDLES, TICKS, "SOL-USD", keys, venues={venue for _, _, venue, _ in CANDLE_TICKS})
    return [(key, price, venue, volume) for key, (_, price, venue, volume) in zip(keys, CANDLE_TICKS, strict=True)]


@pytest.fixture
def server(ticks):
    with SignedFunctionUrl(ticks) as running:
        yield running


@pytest.fixture
def client(server):
    return PriceClient(server.url, session=signed_session(), region=REGION)


# -- latest ----------------------------------------------------------------------------------

def test_latest_of_a_venue_returns_typed_ticks_and_none_without_data(client, server):
    latest = client.latest(["BTC-USD", "ETH-USD", "XRP-USD"], venue="binance")
    assert list(latest) == ["BTC-USD", "ETH-USD", "XRP-USD"] and latest["XRP-USD"] is None
    btc, eth = latest["BTC-USD"], latest["ETH-USD"]
    assert isinstance(btc, Tick) and btc.price == Decimal("37005.05") and btc.time_ms == T0 + 5000
    assert btc.venue == "binance" and not btc.is_composite
    assert btc.time == datetime(2023, 11, 14, 22, 13, 25, tzinfo=UTC)
    assert eth.price == Decimal("2045.123456789012345678") and eth.volume == Decimal("3.25")
    assert eth.sma_5 == Decimal("2040.5") and eth.ema_12 == Decimal("2041.25") and eth.change_pct == Decimal("0.125")
    assert eth.sma_20 is None and eth.volatility_20 is None and eth.enriched_at_ms == T0 + 550
    assert len(server.requests) == 1  # one request for all three


def test_latest_without_a_venue_is_the_composite_naming_its_venues(client):
    btc = client.latest("BTC-USD")["BTC-USD"]
    assert btc.is_composite and btc.venue is None and btc.venues == 2 and btc.time_ms == T0 + 5000
    assert btc.price == (Decimal("37005.05") + Decimal("37003.5")) / 2
    assert btc.venue_prices == {"binance": Decimal("37005.05"), "kraken": Decimal("37003.5")}
    kraken = client.latest("BTC-USD", venue="kraken")["BTC-USD"]
    assert (kraken.price, kraken.venue, kraken.time_ms) == (Decimal("37003.5"), "kraken", T0 + 3000)
    frame = client.latest(["BTC-USD", "ETH-USD"], as_frame=True)
    assert list(frame["venues"]) == [2, 1] and list(frame["price"]) == [37004.275, 2045.123456789012345678]


def test_latest_as_frame_has_a_utc_index_and_floats_or_decimals(client):
    frame = client.latest(["ETH-USD", "BTC-USD", "XRP-USD"], venue="binance", as_frame=True)
    assert list(frame["symbol"]) == ["ETH-USD", "BTC-USD"]  # no row for a symbol without data
    assert str(frame.index.tz) == "UTC" and frame.index.name == "time"
    assert frame["price"].dtype == "float64" and frame.loc[frame["symbol"] == "ETH-USD", "sma_5"].iloc[0] == 2040.5
    assert list(frame["venue"]) == ["binance", "binance"]
    exact = client.latest(["ETH-USD"], as_frame=True, decimals=True)
    assert exact["price"].iloc[0] == Decimal("2045.123456789012345678")


def test_more_than_a_hundred_symbols_are_sent_in_batches(client, server):
    symbols = ["BTC-USD"] + [f"C{i}-USD" for i in range(150)]
    latest = client.latest(symbols, venue="binance")
    assert len(latest) == 151 and latest["BTC-USD"].price == Decimal("37005.05") and latest["C149-USD"] is None
    assert len(server.requests) == 2


# -- ticks -----------------------------------------------------------------------------------

def test_ticks_iterate_over_every_page_in_order(client, server):
    got = list(client.ticks("BTC-USD", page_size=2))
    assert [tick.time_ms for tick in got] == [T0, T0 + 1000, T0 + 2000, T0 + 3000, T0 + 3000, T0 + 4000, T0 + 5000]
    assert {t.venue for t in got if t.time_ms == T0 + 3000} == {"binance", "kraken"}
    assert len({t.key for t in got}) == 7
    assert len(server.requests) == 4  # 2 + 2 + 2 + 1: no trailing empty page
    newest_first = list(client.ticks("BTC-USD", order="desc", page_size=3))
    assert [t.key for t in newest_first] == [t.key for t in got][::-1]


@pytest.mark.parametrize(("start", "end"), [
    (T0 + 1000, T0 + 4000),
    ("2023-11-14T22:13:21Z", "2023-11-14T23:13:24+01:00"),
    (datetime(2023, 11, 14, 22, 13, 21, tzinfo=UTC), datetime(2023, 11, 14, 22, 13, 24)),  # naive: UTC
])
def test_a_tick_range_is_start_inclusive_end_exclusive_whatever_the_time_type(client, start, end):
    got = list(client.ticks("BTC-USD", start, end, page_size=2))
    assert [t.time_ms for t in got] == [T0 + 1000, T0 + 2000, T0 + 3000, T0 + 3000]


def test_ticks_as_frame_reads_all_pages(client):
    frame = client.ticks("BTC-USD", T0 + 1000, page_size=2, as_frame=True)
    assert len(frame) == 6 and str(frame.index.tz) == "UTC" and frame.index.is_monotonic_increasing
    assert frame["price"].iloc[-1] == 37005.05 and frame["price"].dtype == "float64"
    exact = client.ticks("BTC-USD", T0 + 1000, page_size=2, as_frame=True, decimals=True)
    assert exact["price"].iloc[-1] == Decimal("37005.05")


def test_ticks_of_a_venue_are_that_venues_only_and_frames_name_the_venue(client):
    assert [(t.time_ms, t.venue) for t in client.ticks("BTC-USD", venue="kraken")] == [(T0 + 3000, "kraken")]
    frame = client.ticks("BTC-USD", page_size=3, as_frame=True)
    assert list(frame["venue"]) == ["binance"] * 3 + sorted(["binance", "kraken"], key=lambda v: int(
        frame[(frame["venue"] == v) & (frame.index == frame.index[3])]["key"].iloc[0])) + ["binance"] * 2
    assert len(client.ticks("BTC-USD", venue="binance", page_size=2, as_frame=True)) == 6


def test_a_symbol_without_ticks_is_empty(client):
    assert list(client.ticks("DOGE-USD")) == []


# -- symbols and candles ------------------------------------------------------------------------

def test_symbols_are_the_registry_with_each_symbols_venues(client, candle_ticks):
    assert client.symbols() == {"SOL-USD": ["binance", "coinbase", "kraken"]}


def test_symbols_map_each_symbol_to_its_venues(client, monkeypatch):
    monkeypatch.setattr(api, "list_symbols", lambda *args: {"BTC-USD": ["binance", "kraken"], "ETH-USD": []})
    assert client.symbols() == {"BTC-USD": ["binance", "kraken"], "ETH-USD": []}


def test_candles_read_every_page_as_typed_rows(client, server, candle_ticks):
    got = client.candles("SOL-USD", "1m", venue="binance", page_size=2)
    assert all(isinstance(c, Candle) and c.interval == "1m" and c.symbol == "SOL-USD" and c.venue == "binance"
               for c in got)
    expected = expected_candles([tick for tick in candle_ticks if tick[2] == "binance"], 60_000)
    assert [(c.start_ms, c.open, c.high, c.low, c.close, c.count, c.volume, c.volume_count) for c in got] == \
        [(e["start"], e["open"], e["high"], e["low"], e["close"], e["count"], e["volume"], e["volume_count"])
         for e in expected]
    assert got[0].start == datetime(2023, 11, 14, tzinfo=UTC)
    assert len(server.requests) >= 3  # 5 candles, 2 per page
    hours = client.candles("SOL-USD", "1h", start=date(2023, 11, 14), end="2023-11-14T02:00:00Z")
    assert [(c.start_ms, c.count, c.venue) for c in hours] == [(D0, 7, None), (D0 + 3_600_000, 2, None)]


def test_candles_carry_their_volume_and_venue(client, monkeypatch):
    asked: list[str | None] = []

    def read_candles(*args: Any, venue: str | None = None) -> tuple[list[Any], int | None]:
        asked.append(venue)
        candle = StoredCandle(D0, Decimal(1), Decimal(2), Decimal(1), Decimal(2), 4, volume=Decimal("2.000000001"),
                              volume_count=3)
        return [candle], None

    monkeypatch.setattr(api, "read_candles", read_candles)
    got = client.candles("SOL-USD", "1m", venue="Kraken")
    assert asked == ["kraken"] and got[0].venue == "kraken"
    assert (got[0].volume, got[0].volume_count, got[0].count) == (Decimal("2.000000001"), 3, 4)
    frame = client.candles("SOL-USD", "1m", as_frame=True)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "count", "volume_count"]
    assert frame["volume"].iloc[0] == 2.000000001 and frame["volume_count"].dtype == "int64"
    exact = client.candles("SOL-USD", "1m", as_frame=True, decimals=True)
    assert exact["volume"].iloc[0] == Decimal("2.000000001")


def test_candles_as_frame(client, candle_ticks):
    frame = client.candles("SOL-USD", "1h", venue="binance", as_frame=True)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "count", "volume_count"]
    assert str(frame.index.tz) == "UTC" and frame.index.name == "start" and list(frame["count"]) == [6, 2]
    assert frame["high"].dtype == "float64" and frame["high"].iloc[0] == 104.75
    assert list(frame["volume"]) == [6.85, 7.0] and list(frame["volume_count"]) == [5, 1]
    exact = client.candles("SOL-USD", "1d", venue="binance", as_frame=True, decimals=True)
    assert exact["low"].iloc[0] == Decimal("98") and isinstance(exact["low"].iloc[0], Decimal)


def test_an_unknown_interval_surfaces_as_a_price_api_error(client, candle_ticks):
    with pytest.raises(PriceApiError) as caught:
        client.candles("SOL-USD", "2m")
    assert caught.value.status == 400 and caught.value.message.startswith("interval:")


# -- errors ----------------------------------------------------------------------------------

def test_an_api_error_is_a_price_api_error_with_the_status_and_message(client):
    with pytest.raises(PriceApiError) as caught:
        client.ticks("BTC-USD", page_size=5000)  # raised by the call itself, not at the first next()
    assert caught.value.status == 400 and caught.value.message.startswith("limit: must be an integer from 1 to 1000")
    with pytest.raises(PriceApiError) as caught:
        client.latest(["btc-usd"])
    assert caught.value.status == 400 and caught.value.message.startswith("symbols:")


def test_an_unsigned_request_is_forbidden(server):
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(server.url + "v1/latest?symbols=BTC-USD", timeout=10)
    assert caught.value.code == 403 and json.loads(caught.value.read()) == {"Message": "Forbidden"}
    assert server.forbidden == 1 and server.requests == []


def test_a_wrong_secret_or_region_is_forbidden_and_surfaces_as_403(server):
    wrong = Credentials(CREDENTIALS.access_key, "not-the-secret", CREDENTIALS.token)
    for client in (PriceClient(server.url, session=signed_session(wrong), region=REGION),
                   PriceClient(server.url, session=signed_session(), region="eu-west-1")):
        with pytest.raises(PriceApiError) as caught:
            client.symbols()
        assert caught.value.status == 403 and caught.value.message == "Forbidden"
    assert server.requests == []


def test_a_throttled_request_is_retried(client, server, ticks):
    class ThrottledOnce:
        def __init__(self) -> None:
            self.failed = False

        def query(self, **kwargs: Any) -> dict[str, Any]:
            if not self.failed:
                self.failed = True
                raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "Query")
            return reads_for(ticks).query(**kwargs)

    server.reads = ThrottledOnce()
    assert client.latest(["BTC-USD"], venue="binance")["BTC-USD"].price == Decimal("37005.05")
    assert len(server.requests) == 2


def test_times_are_epoch_ms_never_seconds():
    assert to_epoch_ms("2023-11-14T22:13:20Z") == T0 == to_epoch_ms(datetime(2023, 11, 14, 22, 13, 20))
    assert to_epoch_ms(date(2023, 11, 14)) == T0 - (22 * 3600 + 13 * 60 + 20) * 1000
    assert to_epoch_ms("2023-11-14T22:13:20.0001Z") == T0 + 1  # sub-ms rounds up, as on the server
    with pytest.raises(ValueError, match="epoch seconds"):
        to_epoch_ms(1_700_000_000)
    assert to_epoch_ms(str(T0)) == T0 == to_epoch_ms(f" {T0} ")  # `invoke prices --from 1699999999999`
    for seconds_or_basic_date in ("1700000000", "20240101"):
        with pytest.raises(ValueError, match="epoch seconds"):
            to_epoch_ms(seconds_or_basic_date)
    with pytest.raises(ValueError, match="Invalid isoformat"):
        to_epoch_ms("--5")  # not a number: read as ISO-8601, and refused as one
    with pytest.raises(TypeError):
        to_epoch_ms(1.7e12)  # type: ignore[arg-type]


def test_the_region_comes_from_a_function_url():
    client = PriceClient("https://abcdefghij.lambda-url.ap-southeast-2.on.aws/", session=signed_session())
    assert client.region == "ap-southeast-2"


# -- the verifier itself ----------------------------------------------------------------------

def signed(url: str, credentials: Credentials = CREDENTIALS, region: str = REGION, service: str = "lambda",
           body: bytes = b"") -> dict[str, str]:
    request = AWSRequest(method="GET", url=url, data=body)
    SigV4Auth(credentials, service, region).add_auth(request)
    return {"Host": urlsplit(url).netloc, **dict(request.headers.items())}


def test_verify_sigv4_accepts_exactly_the_signed_request():
    url = "https://abc.lambda-url.us-east-1.on.aws/v1/ticks/BTC-USD?from=1&limit=2&cursor=eyJ2IjoxfQ"
    headers = signed(url)
    assert verify_sigv4("GET", url, headers, b"", CREDENTIALS, REGION, "lambda")
    # Parameters in another order are the same canonical query.
    reordered = "https://abc.lambda-url.us-east-1.on.aws/v1/ticks/BTC-USD?limit=2&cursor=eyJ2IjoxfQ&from=1"
    assert verify_sigv4("GET", reordered, headers, b"", CREDENTIALS, REGION, "lambda")
    refusals = [
        ("GET", url.replace("limit=2", "limit=3"), headers, b""),
        ("GET", url.replace("BTC-USD", "ETH-USD"), headers, b""),
        ("POST", url, headers, b""),
        ("GET", url, headers, b"a body"),
        ("GET", url, {**headers, "Host": "evil.example"}, b""),
        ("GET", url, {k: v for k, v in headers.items() if k != "X-Amz-Security-Token"}, b""),
        ("GET", url, {k: v for k, v in headers.items() if k != "Authorization"}, b""),
        ("GET", url, {**headers, "X-Amz-Date": "20200101T000000Z"}, b""),
    ]
    for method, other_url, other_headers, body in refusals:
        assert not verify_sigv4(method, other_url, other_headers, body, CREDENTIALS, REGION, "lambda")
    assert not verify_sigv4("GET", url, headers, b"", CREDENTIALS, "eu-west-1", "lambda")
    assert not verify_sigv4("GET", url, signed(url, service="execute-api"), b"", CREDENTIALS, REGION, "lambda")
    # A correct signature that is too old is a replay.
    assert not verify_sigv4("GET", url, headers, b"", CREDENTIALS, REGION, "lambda", now=time.time() + 301)
