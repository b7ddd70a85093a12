"""Server-side SigV4 verification, as a function URL with AWS_IAM auth does it, for the
emulator's function URL stand-in: `verify_sigv4(...)` is False for an unsigned request, a
wrong key, a signature over different bytes, a scope for another region or service, or a
stale date.

The canonical request is rebuilt the way the service does, from what arrived rather
than from what a particular client would sign: the query is decoded and re-encoded
(RFC 3986, sorted), the headers are exactly those named in SignedHeaders. botocore then
derives the signing key and the signature, so the crypto is not hand-written here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from calendar import timegm
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.utils import normalize_url_path

MAX_SKEW_SECONDS = 300  # AWS refuses a signature dated more than 5 minutes from its clock
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/\s]+)/(?P<day>\d{8})/(?P<region>[^/\s]+)/(?P<service>[^/\s]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<headers>[a-z0-9;_.-]+),\s*Signature=(?P<signature>[0-9a-f]{64})")


def _canonical_query(query: str) -> str:
    pairs = []
    for pair in query.split("&") if query else []:
        key, _, value = pair.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def _frozen(credentials: Any) -> Any:
    return credentials.get_frozen_credentials() if hasattr(credentials, "get_frozen_credentials") else credentials


def signing_key_id(headers: Mapping[str, str]) -> str | None:
    """The access key id a SigV4 Authorization header names (None when there is none)."""
    lower = {name.lower(): value for name, value in headers.items()}
    match = _AUTHORIZATION.fullmatch(lower.get("authorization", "").strip())
    return match["key"] if match else None


def verify_sigv4(method: str, url: str, headers: Mapping[str, str], body: bytes, credentials: Any,
                 region: str, service: str, now: float | None = None) -> bool:
    """True when the request carries a valid SigV4 signature by `credentials` for `region`/`service`.

    `url` is the full URL as received (scheme, host, raw path and raw query);
    `credentials` is a botocore `Credentials` (or anything with access_key/secret_key/token).
    A session token, when the credentials have one, must be sent and signed.
    """
    lower = {name.lower(): value for name, value in headers.items()}
    match = _AUTHORIZATION.fullmatch(lower.get("authorization", "").strip())
    frozen = _frozen(credentials)
    if not match or match["key"] != frozen.access_key or match["region"] != region or match["service"] != service:
        return False
    amz_date = lower.get("x-amz-date", "")
    if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date) or amz_date[:8] != match["day"]:
        return False
    signed_at = timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    if abs((time.time() if now is None else now) - signed_at) > MAX_SKEW_SECONDS:
        return False
    names = match["headers"].split(";")
    if names != sorted(set(names)) or "host" not in names or "x-amz-date" not in names \
            or any(name not in lower for name in names):
        return False
    if frozen.token and (lower.get("x-amz-security-token") != frozen.token or "x-amz-security-token" not in names):
        return False
    payload_hash = hashlib.sha256(body).hexdigest()
    if "x-amz-content-sha256" in lower and lower["x-amz-content-sha256"] != payload_hash:
        return False

    parts = urlsplit(url)
    canonical_request = "\n".join([
        method.upper(),
        quote(normalize_url_path(parts.path or "/"), safe="/~"),  # the raw path, encoded once more
        _canonical_query(parts.query),
        "".join(f"{name}:{' '.join(lower[name].split())}\n" for name in names),
        match["headers"],
        payload_hash,
    ])
    request = AWSRequest(method=method, url=url, data=body)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(frozen, service, region)
    expected = signer.signature(signer.string_to_sign(request, canonical_request), request)
    return hmac.compare_digest(expected, match["signature"])
