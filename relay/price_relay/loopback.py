"""A loopback stand-in for the price webhook: what the relay's benchmark (`price_relay.bench`)
sends to, and the project's relay tests too (tests/relay/loopback.py), so there is one copy.

It answers as docs/webhook-contract.md describes the webhook: signatures checked (HMAC-SHA256,
X-Source, a 300 s window), each element checked for what the relay is responsible for,
byte-identical elements counted as duplicates. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


def element_texts(body: bytes) -> list[str]:
    """The exact text of each element of a JSON array body (byte-identity is the point)."""
    text = body.decode("utf-8")
    decoder = json.JSONDecoder()
    index = text.index("[") + 1
    items: list[str] = []
    while True:
        while text[index] in " \t\r\n,":
            index += 1
        if text[index] == "]":
            return items
        _, end = decoder.raw_decode(text, index)
        items.append(text[index:end])
        index = end


def _positive(value: Any) -> bool:
    try:
        return Decimal(str(value)) > 0
    except (InvalidOperation, ValueError):
        return False


def check_element(fmt: str, element: Any) -> str | None:
    """The webhook's verdict on one exchange-native element: None, or the error text.
    Covers what the relay is responsible for: the shape, a positive price, an event time."""
    if not isinstance(element, dict):
        return "update: must be an object"
    if fmt == "binance":
        event = element.get("data", element)
        if event.get("e") != "24hrTicker":
            return "e: must be 24hrTicker"
        rows = [(event.get("c"), event.get("E"))]
    elif fmt == "coinbase":
        if element.get("type") != "ticker":
            return "type: must be ticker"
        rows = [(element.get("price"), element.get("time"))]
    elif fmt == "kraken":
        if element.get("channel") != "ticker" or not isinstance(element.get("data"), list):
            return "data: must be a non-empty list of tickers"
        rows = [(row.get("last"), row.get("timestamp")) for row in element["data"]]
    elif fmt == "generic":
        if not isinstance(element.get("symbol"), str) or not isinstance(element.get("exchange"), str):
            return "symbol: is required"
        rows = [(element.get("price"), element.get("timestamp"))]
    else:
        return f"format: unknown {fmt!r}"
    for price, event_time in rows:
        if not _positive(price):
            return "price: must be greater than 0"
        if event_time is None:
            return "timestamp: missing (the relay must add the receive time)"
    return None


@dataclass
class Received:
    """One request the stand-in answered."""
    status: int
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class WebhookStandIn:
    """The webhook on 127.0.0.1, as docs/webhook-contract.md describes it.

    - 401 unless X-Source is known and X-Signature `t=<unix>,v1=<hex>[,v1=...]` carries a
      valid HMAC-SHA256 of b"<t>." + body within 300 s;
    - each element is checked; a byte-identical element seen before counts as a
      duplicate, a new one is stored; answers {"accepted","duplicates","queued","rejected"};
      no valid element at all is a 400, like the real webhook;
    - `mode`: "ok", "400" (refuses the body), "500" (stores nothing), "store_then_500"
      (stores, then fails: the re-send finds duplicates); `stop()` makes it unreachable
      and `start()` brings it back on the same port.
    """

    def __init__(self, secrets: dict[str, list[str]]) -> None:
        self.secrets = secrets
        self.mode = "ok"
        self.requests: list[Received] = []
        self.stored: list[str] = []          # first deliveries, in arrival order
        self._seen: set[str] = set()
        self.duplicates = 0
        self.lock = threading.Lock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> WebhookStandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, answer = stand_in.answer(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True,
                                        name="webhook-stand-in")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=5)
            self._server = None

    def _verify(self, headers: dict[str, str], body: bytes) -> str | None:
        source = headers.get("x-source", "")
        if source not in self.secrets:
            return "unauthorized: unknown source"
        timestamp, candidates = None, []
        for part in headers.get("x-signature", "").split(","):
            name, _, value = part.strip().partition("=")
            if name == "t" and value.isdigit():
                timestamp = int(value)
            elif name == "v1":
                candidates.append(value)
        if timestamp is None or not candidates:
            return "unauthorized: X-Signature must be 't=<unix seconds>,v1=<hex>'"
        if abs(time.time() - timestamp) > 300:
            return "unauthorized: signature timestamp outside the allowed window"
        message = str(timestamp).encode() + b"." + body
        expected = [hmac.new(s.encode(), message, hashlib.sha256).hexdigest() for s in self.secrets[source]]
        if not any(hmac.compare_digest(c, e) for c in candidates for e in expected):
            return "unauthorized: bad signature"
        return None

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        query = parse_qs(urlsplit(path).query)
        with self.lock:
            status, answer = self._answer(query, headers, body)
            self.requests.append(Received(status, query, headers, body))
            return status, answer

    def _answer(self, query: dict[str, list[str]], headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        unauthorized = self._verify(headers, body)
        if unauthorized:
            return 401, {"error": unauthorized}
        if self.mode == "400":
            return 400, {"error": "format: refused by the test"}
        if self.mode == "500":
            return 500, {"error": "some updates could not be stored or queued; retry the request"}
        fmt = query.get("format", ["generic"])[0]
        texts = element_texts(body)
        accepted, duplicates, rejected = 0, 0, []
        for index, text in enumerate(texts):
            error = check_element(fmt, json.loads(text, parse_float=Decimal))
            if error:
                rejected.append({"index": index, "error": error})
            elif text in self._seen:
                duplicates += 1
            else:
                self._seen.add(text)
                self.stored.append(text)
                accepted += 1
        self.duplicates += duplicates
        if not accepted and not duplicates:
            return 400, {"error": "no valid update in the batch", "accepted": 0, "duplicates": 0, "queued": 0,
                         "rejected": rejected}
        result = {"accepted": accepted, "duplicates": duplicates, "queued": 0, "rejected": rejected}
        if self.mode == "store_then_500":
            return 500, {**result, "error": "some updates could not be stored or queued; retry the request"}
        return 200, result

    def bodies(self, status: int = 200) -> list[bytes]:
        with self.lock:
            return [r.body for r in self.requests if r.status == status]

    def count(self, status: int | None = None) -> int:
        with self.lock:
            return sum(status is None or r.status == status for r in self.requests)
