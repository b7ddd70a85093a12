"""A local stand-in for a Lambda function URL (moto returns the URL but cannot serve it).

Turns each HTTP request into a payload format 2.0 event, as the function URL does, and
enforces the URL's auth type as AWS does: with AWS_IAM, a request without a valid SigV4
signature (service `lambda`) by the emulator's credentials gets 403 and never reaches the
function; with NONE, everything reaches it.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from emulator import session
from emulator.loopback import LoopbackHandler, LoopbackServer
from emulator.runtime import FunctionError, LocalFunction
from emulator.sigv4 import verify_sigv4

MAX_REQUEST_BYTES = 6 * 1024 * 1024  # the function URL's own payload limit


def url_event(method: str, raw_url: str, headers: dict[str, str], body: bytes, source_ip: str) -> dict[str, Any]:
    parts = urlsplit(raw_url)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    # Payload format 2.0 joins the values of a repeated query key with commas.
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": parts.path or "/", "rawQueryString": parts.query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "queryStringParameters": query or None,
        "requestContext": {"http": {"method": method, "path": parts.path or "/", "protocol": "HTTP/1.1",
                                    "sourceIp": source_ip, "userAgent": headers.get("User-Agent", "")},
                           "timeEpoch": int(time.time() * 1000)},
        "body": text, "isBase64Encoded": encoded,
    }


FORBIDDEN = b'{"Message":"Forbidden"}'


class FunctionUrlServer:
    def __init__(self, function: LocalFunction, port: int = 0, *, auth_type: str = "NONE",
                 region: str = session.DEFAULT_REGION) -> None:
        if auth_type not in ("NONE", "AWS_IAM"):
            raise ValueError(f"unknown function URL auth type {auth_type!r}")
        self.function, self.auth_type, self.region = function, auth_type, region
        server = self

        class Handler(LoopbackHandler):
            def _handle(self) -> None:
                if int(self.headers.get("Content-Length") or 0) > MAX_REQUEST_BYTES:
                    self.reply(413, {"Content-Type": "application/json"}, b'{"Message":"Request too large"}')
                    return
                body = self.read_body()
                if server.auth_type == "AWS_IAM" and not verify_sigv4(
                        self.command, f"{server.base_url}{self.path}", dict(self.headers.items()), body,
                        session.credentials(), server.region, "lambda"):
                    self.reply(403, {"Content-Type": "application/json"}, FORBIDDEN)
                    return
                event = url_event(self.command, self.path, dict(self.headers.items()), body, self.client_address[0])
                try:
                    result = server.function.invoke(event)
                except FunctionError:
                    self.reply(502, {"Content-Type": "application/json"}, b'{"Message":"Internal Server Error"}')
                    return
                payload = result.get("body", "") if isinstance(result, dict) else json.dumps(result)
                data = base64.b64decode(payload) if isinstance(result, dict) and result.get("isBase64Encoded") \
                    else str(payload).encode()
                status = result.get("statusCode", 200) if isinstance(result, dict) else 200
                headers = result.get("headers", {}) if isinstance(result, dict) else {}
                self.reply(status, headers, data)

            do_POST = do_GET = do_PUT = _handle

        self._server = LoopbackServer(Handler, port)
        self.base_url = self._server.base_url
        self.url = self.base_url + "/"
        self.port = int(self.base_url.rsplit(":", 1)[1])

    def start(self) -> FunctionUrlServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
