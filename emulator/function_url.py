"""A local stand-in for a Lambda function URL (moto returns the URL but cannot serve it).

Turns each HTTP request into a payload format 2.0 event, as the function URL does, and
enforces the URL's auth type as AWS does: with AWS_IAM, a request gets 403 and never reaches
the function unless it carries a valid SigV4 signature (service `lambda`) by a known principal
whose policies allow it: the emulator's operator key (the account's root), or a role session
issued by the IAM gate whose policies allow `lambda:InvokeFunctionUrl` (with
lambda:FunctionUrlAuthType AWS_IAM) and `lambda:InvokeFunction` (with lambda:InvokedViaFunctionUrl)
on the function, as the price-readers policy does. With NONE, everything reaches it.
"""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from emulator import session
from emulator.loopback import LoopbackHandler, LoopbackServer
from emulator.runtime import FunctionError, LocalFunction
from emulator.sigv4 import signing_key_id, verify_sigv4

if TYPE_CHECKING:
    from emulator.iam_gate import IamGate

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
                 region: str = session.DEFAULT_REGION, gate: IamGate | None = None) -> None:
        if auth_type not in ("NONE", "AWS_IAM"):
            raise ValueError(f"unknown function URL auth type {auth_type!r}")
        self.function, self.auth_type, self.region, self.gate = function, auth_type, region, gate
        server = self

        class Handler(LoopbackHandler):
            def _handle(self) -> None:
                if int(self.headers.get("Content-Length") or 0) > MAX_REQUEST_BYTES:
                    self.reply(413, {"Content-Type": "application/json"}, b'{"Message":"Request too large"}')
                    return
                body = self.read_body()
                if server.auth_type == "AWS_IAM" and not server.allows(
                        self.command, f"{server.base_url}{self.path}", dict(self.headers.items()), body):
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

    def allows(self, method: str, url: str, headers: dict[str, str], body: bytes) -> bool:
        """AWS_IAM: a valid signature by a known principal, whose policies allow the URL call."""
        key = signing_key_id(headers)
        identity = self.gate.identity(key) if self.gate is not None and key else None
        if key == session.ACCESS_KEY_ID:
            credentials = session.credentials()
        elif identity is not None:
            credentials = identity.credentials
        else:
            return False
        if not verify_sigv4(method, url, headers, body, credentials, self.region, "lambda"):
            return False
        if identity is None or self.gate is None:
            return True  # the operator's key: the account's root
        arn = self.function.spec.arn
        through_url = self.gate.authorize(identity, "lambda:InvokeFunctionUrl", [arn],
                                          {"lambda:FunctionUrlAuthType": "AWS_IAM"})
        invoke = self.gate.authorize(identity, "lambda:InvokeFunction", [arn],
                                     {"lambda:InvokedViaFunctionUrl": "true"})
        return through_url.allowed and invoke.allowed

    def start(self) -> FunctionUrlServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
