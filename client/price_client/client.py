"""`PriceClient`: the price API over HTTPS, each request signed with SigV4 for the function URL.

A function URL with AWS_IAM auth accepts only requests signed for service `lambda` in
its region by a principal allowed `lambda:InvokeFunctionUrl`. botocore supplies the
credentials (environment, profile, SSO, instance role: its usual chain) and the signer;
the standard library's urllib sends the request, so the only dependency is botocore.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import quote, urlencode, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from price_client.errors import PriceApiError
from price_client.frames import candles_frame, ticks_frame
from price_client.models import Candle, Tick
from price_client.times import TimeLike, to_epoch_ms

if TYPE_CHECKING:
    import pandas

__version__ = "0.2.0"
SERVICE = "lambda"
MAX_SYMBOLS_PER_REQUEST = 100
RETRYABLE = {429, 502, 503, 504}
_URL_REGION = re.compile(r"\.lambda-url\.([a-z0-9-]+)\.on\.aws$")


class PriceClient:
    """Read prices, ticks and candles from the pipeline's price API.

    `url` is the function URL (`invoke outputs` prints it as `price_api_url`). `session` is
    a boto3 or botocore session whose credentials sign the requests (default: botocore's
    credential chain). `region` defaults to the one in a `*.lambda-url.<region>.on.aws` URL,
    then the session's. Busy answers (429/502/503/504) and lost connections are retried
    `retries` times with backoff: every call is a GET, so a retry is always safe.
    """

    def __init__(self, url: str, session: Any = None, region: str | None = None, *,
                 timeout: float = 30.0, retries: int = 2) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._base = url.rstrip("/")
        if session is None:
            import botocore.session

            session = botocore.session.get_session()
        self._credentials = session.get_credentials()
        if self._credentials is None:
            raise PriceApiError(None, "no AWS credentials found to sign requests (set a profile, "
                                      "environment variables or pass session=)")
        region = region or _region_from_host(parts.hostname or "") or _session_region(session)
        if not region:
            raise ValueError("region is unknown: pass region= (the function URL's region)")
        self.region = region
        self._timeout = timeout
        self._retries = retries

    # -- routes ---------------------------------------------------------------------------

    def symbols(self) -> dict[str, list[str]]:
        """Every symbol that has candles, sorted, with the venues it has ticks from:
        {"BTC-USD": ["binance", "coinbase", "kraken"], ...}."""
        listed = self._get("/v1/symbols", {})["symbols"]
        if isinstance(listed, list):  # a price API from before venues: symbols only
            return {str(symbol): [] for symbol in listed}
        return {str(symbol): [str(venue) for venue in venues] for symbol, venues in listed.items()}

    @overload
    def latest(self, symbols: Iterable[str] | str, *, venue: str | None = ..., as_frame: Literal[False] = ...,
               decimals: bool = ...) -> dict[str, Tick | None]: ...

    @overload
    def latest(self, symbols: Iterable[str] | str, *, venue: str | None = ..., as_frame: Literal[True],
               decimals: bool = ...) -> pandas.DataFrame: ...

    def latest(self, symbols: Iterable[str] | str, *, venue: str | None = None, as_frame: bool = False,
               decimals: bool = False) -> dict[str, Tick | None] | pandas.DataFrame:
        """Each symbol's latest price (None: no data), in the order asked.

        With `venue` ("binance", ...): that venue's newest tick, with its indicators. Without:
        the composite, a `Tick` whose price is the median of the fresh venues' latest prices
        (`venues`, `venue_prices`; see `Tick`). Any number of symbols: they are sent 100 per
        request. A frame has one row per symbol with data, indexed by the tick's time.
        """
        wanted = list(dict.fromkeys([symbols] if isinstance(symbols, str) else symbols))
        found: dict[str, Tick | None] = {}
        for start in range(0, len(wanted), MAX_SYMBOLS_PER_REQUEST):
            chunk = wanted[start:start + MAX_SYMBOLS_PER_REQUEST]
            body = self._get("/v1/latest", {"symbols": ",".join(chunk), "venue": venue})
            for symbol in chunk:
                data = body["latest"].get(symbol)
                found[symbol] = Tick.from_json(data) if data else None
        if as_frame:
            return ticks_frame((tick for tick in found.values() if tick is not None), decimals)
        return found

    @overload
    def ticks(self, symbol: str, start: TimeLike | None = ..., end: TimeLike | None = ..., order: str = ..., *,
              venue: str | None = ..., page_size: int = ..., as_frame: Literal[False] = ...,
              decimals: bool = ...) -> Iterator[Tick]: ...

    @overload
    def ticks(self, symbol: str, start: TimeLike | None = ..., end: TimeLike | None = ..., order: str = ..., *,
              venue: str | None = ..., page_size: int = ..., as_frame: Literal[True],
              decimals: bool = ...) -> pandas.DataFrame: ...

    def ticks(self, symbol: str, start: TimeLike | None = None, end: TimeLike | None = None, order: str = "asc", *,
              venue: str | None = None, page_size: int = 1000, as_frame: bool = False,
              decimals: bool = False) -> Iterator[Tick] | pandas.DataFrame:
        """Every tick with start <= time < end (None: unbounded), oldest first or (order="desc") newest first:
        every venue's in key order, each naming its `venue`, or one venue's.

        Returns an iterator that fetches page after page as it is consumed; the first page is
        fetched now, so a bad argument raises here rather than at the first `next()`.
        `as_frame=True` reads every page into one DataFrame.
        """
        params = {"from": _ms(start), "to": _ms(end), "order": order, "limit": page_size, "venue": venue}
        rows = (Tick.from_json(item) for item in self._pages(f"/v1/ticks/{quote(symbol, safe='')}", params, "ticks"))
        return ticks_frame(rows, decimals) if as_frame else rows

    @overload
    def candles(self, symbol: str, interval: str, start: TimeLike | None = ..., end: TimeLike | None = ..., *,
                venue: str | None = ..., page_size: int = ..., as_frame: Literal[False] = ...,
                decimals: bool = ...) -> list[Candle]: ...

    @overload
    def candles(self, symbol: str, interval: str, start: TimeLike | None = ..., end: TimeLike | None = ..., *,
                venue: str | None = ..., page_size: int = ..., as_frame: Literal[True],
                decimals: bool = ...) -> pandas.DataFrame: ...

    def candles(self, symbol: str, interval: str, start: TimeLike | None = None, end: TimeLike | None = None, *,
                venue: str | None = None, page_size: int = 5000, as_frame: bool = False,
                decimals: bool = False) -> list[Candle] | pandas.DataFrame:
        """Every candle of `interval` ("1m", "5m", "15m", "1h", "4h", "1d") whose start is in [start, end),
        oldest first, read page by page (at most 5,000 candles per request): one venue's, or without
        `venue` the composite's (see `Candle`). Each carries its volume."""
        params = {"interval": interval, "from": _ms(start), "to": _ms(end), "limit": page_size, "venue": venue}
        rows = [Candle.from_json(symbol, interval, item, venue.lower() if venue else None)
                for item in self._pages(f"/v1/candles/{quote(symbol, safe='')}", params, "candles")]
        return candles_frame(rows, decimals) if as_frame else rows

    # -- HTTP -----------------------------------------------------------------------------

    def _pages(self, path: str, params: dict[str, Any], key: str) -> Iterator[dict[str, Any]]:
        """Rows of every page, following `next`; the first page is requested before returning."""
        first = self._get(path, params)

        def rows() -> Iterator[dict[str, Any]]:
            body = first
            while True:
                yield from body[key]
                if not body.get("next"):
                    return
                body = self._get(path, {**params, "cursor": body["next"]})
        return rows()

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        # Encoded exactly as SigV4 canonicalizes a query (RFC 3986, sorted): the string
        # signed is the string sent, so the service's canonical form matches.
        query = urlencode(sorted((k, str(v)) for k, v in params.items() if v is not None),
                          quote_via=quote, safe="-_.~")
        url = self._base + path + ("?" + query if query else "")
        for attempt in range(self._retries + 1):
            try:
                return self._send(url)
            except PriceApiError as error:
                retryable = error.status is None or error.status in RETRYABLE
                if not retryable or attempt == self._retries:
                    raise
                time.sleep(min(error.retry_after or 0.25 * 2 ** attempt, 5.0))
        raise AssertionError("unreachable")

    def _send(self, url: str) -> dict[str, Any]:
        signed = AWSRequest(method="GET", url=url,
                            headers={"Accept": "application/json", "User-Agent": f"price-client/{__version__}"})
        SigV4Auth(self._credentials.get_frozen_credentials(), SERVICE, self.region).add_auth(signed)
        request = urllib.request.Request(url, headers=dict(signed.headers.items()), method="GET")
        try:
            # The scheme is http(s): checked in __init__.
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                body = json.loads(response.read(), parse_float=Decimal)
        except urllib.error.HTTPError as error:
            with error:
                message = _message(error.read(), str(error.reason))
            retry_after = error.headers.get("Retry-After") if error.headers else None
            raise PriceApiError(error.code, message,
                                float(retry_after) if retry_after and retry_after.isdigit() else None) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise PriceApiError(None, f"could not reach {urlsplit(url).netloc}: {reason}") from error
        except ValueError as error:
            raise PriceApiError(None, f"the response is not JSON: {error}") from error
        if not isinstance(body, dict):
            raise PriceApiError(None, "the response is not a JSON object")
        return body


def _ms(value: TimeLike | None) -> int | None:
    return None if value is None else to_epoch_ms(value)


def _message(data: bytes, reason: str) -> str:
    """The API's `error` text, or a function URL's own `Message` (403 Forbidden), or the reason."""
    try:
        body = json.loads(data)
    except ValueError:
        return reason or data[:200].decode("utf-8", "replace")
    if isinstance(body, dict):
        return str(body.get("error") or body.get("Message") or body.get("message") or reason)
    return reason


def _region_from_host(host: str) -> str | None:
    match = _URL_REGION.search(host)
    return match.group(1) if match else None


def _session_region(session: Any) -> str | None:
    region = getattr(session, "region_name", None)  # boto3.Session
    if region is None and hasattr(session, "get_config_variable"):  # botocore Session
        region = session.get_config_variable("region")
    return region
