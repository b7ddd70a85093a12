"""Webhook authentication. Each source has one mode (`WEBHOOK_SECRETS`, see `parse_secrets`):

- `hmac` (the default): `X-Source` names the sender, `X-Signature: t=<unix>,v1=<hex>[,v1=...]`.
  <hex> is HMAC-SHA256 over the bytes of "<t>." followed by the raw body, with one of the
  sender's active secrets; several v1 entries allow secret rotation. Signing with the timestamp
  bounds replays to the skew window, and the signed t is the event time of updates sent without
  one, so a replay or a retry of the same signed request is a duplicate, not a new tick.
- `token`, for senders that can set neither headers nor a signature (TradingView alerts: a URL
  and a body): the body's top-level `source` and `token` fields. They are removed before the
  update is read, and the token is compared in constant time with every active secret.

Either mode may be restricted to source IPs. Every failure is an AuthError whose text is for the
log line only; the caller answers all of them with one generic 401, so an outsider cannot tell
an unknown source from a bad signature.

Cold start: the secrets document is checked by hand (`_source_document`), not by a pydantic
model, and `SourceAuth` and `Authenticated` are `Record`s (functions.shared.records), not frozen
dataclasses. With the zip's bytecode on Python 3.12, importing pydantic cost the webhook's cold
start ~120 ms (its whole import budget is 40 ms), building the model ~13 ms, and each frozen
dataclass ~1.3 ms.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from functions.shared.records import Record

MAX_SIGNATURE_HEADER = 2048
MIN_TOKEN_LENGTH = 16
CREDENTIAL_FIELDS = ("source", "token")
_SOURCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
SOURCE_ID_RULE = "1-64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")       # ASCII only: '²'.isdigit() is true, int('²') fails
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_HEADER_FORMAT = "X-Signature must be 't=<unix seconds>,v1=<64 hex digits>'"
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AuthError(Exception):
    """Why a request is not authenticated: for the log line only (never a secret, never the body,
    never a header value). The response is the same generic 401 for every reason."""


class SourceAuth(Record):
    """How one source authenticates; secrets stay out of repr."""

    __slots__ = ("mode", "secrets", "allowed_ips")

    mode: Literal["hmac", "token"]
    secrets: tuple[bytes, ...]
    allowed_ips: tuple[IpNetwork, ...]

    def __init__(self, mode: Literal["hmac", "token"], secrets: tuple[bytes, ...],
                 allowed_ips: tuple[IpNetwork, ...] = ()) -> None:
        self._init(mode, secrets, allowed_ips)

    def __repr__(self) -> str:
        return f"SourceAuth(mode={self.mode!r}, allowed_ips={self.allowed_ips!r})"

    def allows(self, source_ip: str | None) -> bool:
        """No list allows every address; with one, an unknown or unparsable address is refused."""
        if not self.allowed_ips:
            return True
        try:
            address = ipaddress.ip_address(source_ip or "")
        except ValueError:
            return False
        return any(address in network for network in self.allowed_ips)


class Authenticated(Record):
    """What a request proved: its source, and for HMAC the signed unix time (None for a token)."""

    __slots__ = ("source", "signed_at")

    source: str
    signed_at: int | None

    def __init__(self, source: str, signed_at: int | None) -> None:
        self._init(source, signed_at)


# ---- the secrets document ----------------------------------------------------------------------

# The object form of a source: {"auth": "hmac"|"token", "secrets": [...], "allowed_ips": [...]}.
# Checked by hand with the rules and messages of the strict pydantic model it replaces (no other
# keys; auth "hmac" (the default) or "token"; 1-10 secrets of 1-512 characters; optionally 1-100
# allowed_ips), reporting the first failure as pydantic ordered them: a key that is not text,
# then auth, secrets, allowed_ips, then unknown keys. tests/test_webhook_validation.py checks
# both give the same answers.
_DOCUMENT_KEYS = ("auth", "secrets", "allowed_ips")
_MODES = ("hmac", "token")
MAX_SECRETS, MAX_SECRET_LENGTH, MAX_ALLOWED_IPS = 10, 512, 100
_NOT_UNICODE = "Input should be a valid string, unable to parse raw data as a unicode string"


class _Invalid(ValueError):
    """Where in a source's object (pydantic's dotted location) and what is wrong."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where, self.message = where, message


def _is_unicode(text: str) -> bool:
    """False for a lone surrogate ("\\ud800" in JSON), which pydantic refuses as text."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _string_list(value: Any, where: str, max_items: int, max_length: int | None) -> list[str]:
    """A strict list of strings: its length first (as given), then each item, then min 1 item."""
    if type(value) is not list:
        raise _Invalid(where, "Input should be a valid list")
    if len(value) > max_items:
        raise _Invalid(where, f"List should have at most {max_items} items after validation, not {len(value)}")
    for position, item in enumerate(value):
        if type(item) is not str:
            raise _Invalid(f"{where}.{position}", "Input should be a valid string")
        if max_length is None:
            continue  # a plain str: pydantic hands it on as it is (surrogates included)
        if not _is_unicode(item):
            raise _Invalid(f"{where}.{position}", _NOT_UNICODE)
        if not item:
            raise _Invalid(f"{where}.{position}", "String should have at least 1 character")
        if len(item) > max_length:
            raise _Invalid(f"{where}.{position}", f"String should have at most {max_length} characters")
    if not value:
        raise _Invalid(where, "List should have at least 1 item after validation, not 0")
    return value


def _source_document(value: dict[str, Any]) -> tuple[Literal["hmac", "token"], list[str], list[str] | None]:
    """auth, secrets and allowed_ips (None when absent or null) of a source's object, or _Invalid."""
    if not all(_is_unicode(key) for key in value):
        raise _Invalid("", _NOT_UNICODE)
    mode = value.get("auth", "hmac")
    if type(mode) is str and not _is_unicode(mode):
        raise _Invalid("auth", _NOT_UNICODE)
    if type(mode) is not str or mode not in _MODES:
        raise _Invalid("auth", "Input should be 'hmac' or 'token'")
    if "secrets" not in value:
        raise _Invalid("secrets", "Field required")
    secrets = _string_list(value["secrets"], "secrets", MAX_SECRETS, MAX_SECRET_LENGTH)
    ips = value.get("allowed_ips")
    allowed_ips = None if ips is None else _string_list(ips, "allowed_ips", MAX_ALLOWED_IPS, None)
    for key in value:
        if key not in _DOCUMENT_KEYS:
            raise _Invalid(key, "Extra inputs are not permitted")
    return "token" if mode == "token" else "hmac", secrets, allowed_ips


class _DuplicateKey(ValueError):
    pass


def _pairs_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _networks(source: str, entries: list[str]) -> tuple[IpNetwork, ...]:
    networks = []
    for position, entry in enumerate(entries):
        try:
            networks.append(ipaddress.ip_network(entry, strict=True))
        except ValueError:
            raise ValueError(f"WEBHOOK_SECRETS.{source}.allowed_ips.{position}: must be an IP address or "
                             "network such as 52.89.214.238 or 10.0.0.0/8") from None
    return tuple(networks)


def _source_entry(source: str, value: Any) -> SourceAuth:
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        values = [value] if isinstance(value, str) else value
        if not values or not all(values):
            raise ValueError(f"WEBHOOK_SECRETS.{source}: must be a non-empty secret or list of non-empty secrets")
        return SourceAuth("hmac", tuple(v.encode() for v in values))
    if not isinstance(value, dict):
        raise ValueError(f"WEBHOOK_SECRETS.{source}: must be a secret, a list of secrets, or "
                         '{"auth": "hmac"|"token", "secrets": [...], "allowed_ips": [...]}')
    try:
        mode, secrets, allowed_ips = _source_document(value)
    except _Invalid as error:
        raise ValueError(f"WEBHOOK_SECRETS.{source}.{error.where}: {error.message}") from None
    if mode == "token" and any(len(secret) < MIN_TOKEN_LENGTH for secret in secrets):
        raise ValueError(f"WEBHOOK_SECRETS.{source}.secrets: a token must have at least {MIN_TOKEN_LENGTH} "
                         "characters (it is a bearer credential)")
    networks = _networks(source, allowed_ips) if allowed_ips is not None else ()
    return SourceAuth(mode, tuple(secret.encode() for secret in secrets), networks)


def is_source_id(text: str) -> bool:
    """Whether `text` can name a source (SOURCE_ID_RULE). Tools check an id with this before
    they repeat it: a secret pasted where the id goes is never echoed."""
    return bool(_SOURCE_ID.fullmatch(text))


def parse_secrets(raw: str | None) -> dict[str, SourceAuth]:
    """WEBHOOK_SECRETS → each source's authentication; fails loudly, in one line, never quoting a secret.

    Backward compatible: `{"source-id": "secret" | ["secret", ...]}` is an HMAC source. The object
    form adds the mode and an optional IP allow-list:
    `{"tv-alerts": {"auth": "token", "secrets": ["..."], "allowed_ips": ["52.89.214.238"]}}`.
    """
    try:
        data = json.loads(raw or "{}", object_pairs_hook=_pairs_without_duplicates)
    except _DuplicateKey as duplicate:
        key = str(duplicate)
        shown = repr(key) if is_source_id(key) else "a key"
        raise ValueError(f"WEBHOOK_SECRETS: key {shown} appears twice in one object") from None
    except ValueError as error:
        line, column = getattr(error, "lineno", "?"), getattr(error, "colno", "?")
        raise ValueError(f"WEBHOOK_SECRETS is not valid JSON (line {line}, column {column})") from None
    if not isinstance(data, dict):
        raise ValueError("WEBHOOK_SECRETS must be a JSON object of source id -> secret(s)")
    sources: dict[str, SourceAuth] = {}
    for position, (source, value) in enumerate(data.items()):
        if not is_source_id(source):
            raise ValueError(f"WEBHOOK_SECRETS: source ids must be {SOURCE_ID_RULE} (entry {position + 1} is not)")
        sources[source] = _source_entry(source, value)
    return sources


# ---- HMAC --------------------------------------------------------------------------------------

def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """What a sender puts in X-Signature (used by the demo, the tests and integrators' examples)."""
    return ",".join([f"t={timestamp}"] + [f"v1={sign(secret, timestamp, body)}" for secret in secrets])


def _parse_header(header: str) -> tuple[int, list[str]]:
    """`t=<ASCII digits>` once and at least one `v1=<64 hex>`; unknown schemes (v0=...) are ignored."""
    if len(header) > MAX_SIGNATURE_HEADER:
        raise AuthError("X-Signature header is too long")
    timestamp, candidates = None, []
    for part in header.split(","):
        name, _, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if name == "t":
            if timestamp is not None:
                raise AuthError(f"{_HEADER_FORMAT}: t is given more than once")
            if not _UNIX_SECONDS.fullmatch(value):
                raise AuthError(f"{_HEADER_FORMAT}: t is not unix seconds in ASCII digits")
            timestamp = int(value)
        elif name == "v1":
            digest = value.lower()
            if not _HEX_DIGEST.fullmatch(digest):
                raise AuthError(f"{_HEADER_FORMAT}: a v1 is not 64 hex digits")
            candidates.append(digest)
    if timestamp is None or not candidates:
        raise AuthError(_HEADER_FORMAT)
    return timestamp, candidates


def verify(headers: Mapping[str, str], body: bytes, secrets: Mapping[str, SourceAuth], now: float,
           max_skew_seconds: int, *, source_ip: str | None = None) -> Authenticated:
    """Authenticate a signed (HMAC) request: the source and the signed time, or AuthError."""
    source = (headers.get("x-source") or "").strip()
    if not source:
        raise AuthError("missing X-Source header")
    entry = secrets.get(source)
    if entry is None:
        raise AuthError("unknown source")
    if entry.mode != "hmac":
        raise AuthError(f"X-Signature sent to token source {source}")
    header = headers.get("x-signature")
    if not header:
        raise AuthError("missing X-Signature header")
    timestamp, candidates = _parse_header(header)
    if abs(now - timestamp) > max_skew_seconds:
        raise AuthError("signature timestamp outside the allowed window")
    expected = [sign(key, timestamp, body) for key in entry.secrets]
    # compare_digest for every pair: the time taken does not depend on where a guess differs.
    matched = False
    for candidate in candidates:
        for digest in expected:
            matched |= hmac.compare_digest(candidate.encode(), digest.encode())
    if not matched:
        raise AuthError(f"bad signature for source {source}")
    if not entry.allows(source_ip):
        raise AuthError(f"source IP not allowed for source {source}")
    return Authenticated(source, timestamp)


# ---- token -------------------------------------------------------------------------------------

_NO_SECRET = (hashlib.sha256(b"no secret: an unknown source still costs one comparison").digest(),)


def verify_token(data: Any, secrets: Mapping[str, SourceAuth], *,
                 source_ip: str | None = None) -> tuple[Authenticated, Any]:
    """Authenticate a token request from its parsed body; return it with `source` and `token` removed.

    Comparison is over SHA-256 digests (equal lengths, so compare_digest's time does not depend
    on the token's length or on where a guess differs), against every active secret.
    """
    if not isinstance(data, dict) or not all(name in data for name in CREDENTIAL_FIELDS):
        raise AuthError("no credentials: neither X-Source/X-Signature headers nor source and token in the body")
    rest = {key: value for key, value in data.items() if key not in CREDENTIAL_FIELDS}
    source, token = data["source"], data["token"]
    if not isinstance(source, str) or not isinstance(token, str):
        raise AuthError("the body's source and token must be strings")
    entry = secrets.get(source)
    presented = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
    digests = tuple(hashlib.sha256(secret).digest() for secret in entry.secrets) if entry else _NO_SECRET
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(presented, digest)
    if entry is None:
        raise AuthError("unknown source")
    if entry.mode != "token":
        raise AuthError(f"token sent to HMAC source {source}")
    if not matched:
        raise AuthError(f"bad token for source {source}")
    if not entry.allows(source_ip):
        raise AuthError(f"source IP not allowed for source {source}")
    return Authenticated(source, None), rest
