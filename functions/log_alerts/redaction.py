"""Masking of credentials in log lines before they leave the account in an alert e-mail.

The functions are written never to log secrets, so this is belt and braces: the alert
is the one place where log text leaves AWS, and a leak there cannot be taken back.
It therefore errs on the side of masking: when a value cannot be delimited reliably,
everything up to the end of the line is masked.

Public entry points:

- `redact(text)`: masks credentials in free text; one output line per input line,
  each at most `MAX_GROWTH` characters longer than its input line.
- `summarize(message)`: one alert line for one CloudWatch log event: the `message`
  and a few safe keys of a JSON line (sensitive keys masked at any depth), or the
  headline and final exception line of a text event; always redacted, one line,
  at most `MAX_GROWTH` characters longer than the event.

Which keys are sensitive (after lower-casing, camelCase -> snake_case, `-`/`.` -> `_`,
and dropping any dotted prefix such as `config.`):

- any name containing one of the words in `_SENSITIVE_WORDS` (secret, secrets,
  password, passwd, pass, passphrase, signature, authorization, credential(s),
  apikey, privatekey, cookie, jwt): `aws_secret_access_key`, `client_secret`,
  `x-hub-signature-256`, `WEBHOOK_SECRETS`, `SecretString` ...;
- the names in `_SENSITIVE_NAMES` (token, tokens, auth, sig);
- a name ending in `_token`, `_key` or `_pwd`, *unless* it is listed in
  `_NOT_CREDENTIALS`: data keys (`partition_key`, `sort_key`, `LastEvaluatedKey`,
  `object_key`, `public_key`, ...) and pagination tokens (`NextToken`, ...).
  Unknown `*_key` / `*_token` names are masked: a masked data key costs some
  debugging context, an unmasked credential cannot be recalled.

Words such as `symbol`, `price`, `timestamp`, `key`, `key_count`, `KeyCount`,
`kms_key_id`, `token_type` are not sensitive.

Besides values of sensitive keys, these are masked anywhere: runs of 32+ hex digits
(HMACs, hashes), AWS access key ids (AKIA/ASIA + 16), JWTs, and the password in a
URL's `user:password@` part.

stdlib only: the module is packed into the log-alerts Lambda zip. The value
delimiting is a small hand-written scanner because `re` cannot match balanced,
nested brackets (it has no recursion) and would need fragile patterns for escaped
quotes; the scanner is linear in the line length.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["AUTH_SCHEMES", "MARK", "MAX_GROWTH", "SUMMARY_KEYS", "is_sensitive_key", "redact", "summarize"]

MARK = "[redacted]"
# A masked value may be shorter than the marker (`token=a` -> `token=[redacted]`); lines
# that grew by more than this are cut, which can only remove text, never reveal any.
MAX_GROWTH = 32
# The Powertools keys forwarded next to `message` (the values are masked like the rest).
SUMMARY_KEYS = ("level", "location", "exception_name", "errors", "reasons", "lost", "failed")

_SENSITIVE_WORDS = frozenset({
    "secret", "secrets", "password", "passwords", "passwd", "pass", "passphrase", "signature",
    "authorization", "credential", "credentials", "apikey", "privatekey", "cookie", "jwt",
})
_SENSITIVE_NAMES = frozenset({"token", "tokens", "auth", "sig"})
_SENSITIVE_LAST_WORDS = frozenset({"token", "key", "pwd"})
_NOT_CREDENTIALS = frozenset({
    # Data keys: the pipeline's error lines name items by these, and none is a credential.
    "partition_key", "sort_key", "hash_key", "range_key", "primary_key", "foreign_key", "composite_key",
    "last_evaluated_key", "exclusive_start_key", "start_key", "next_key", "object_key", "s3_key",
    "cache_key", "idempotency_key", "dedup_key", "deduplication_key", "routing_key", "shard_key",
    "row_key", "lookup_key", "group_key", "item_key", "record_key", "dict_key", "map_key",
    "public_key", "parameter_key",
    # Pagination cursors: opaque, but they grant nothing.
    "next_token", "continuation_token", "next_continuation_token", "pagination_token", "page_token",
})
# Header-like keys whose bare value is `<scheme> <credentials>` (or, for cookies, `a=b; c=d`).
_AUTH_NAMES = frozenset({"authorization", "proxy_authorization", "x_authorization"})
_COOKIE_NAMES = frozenset({"cookie", "set_cookie", "cookies"})
# Token68 schemes (RFC 7235) and common parameterised ones. After an Authorization key the
# scheme word stays visible and its credentials are masked; after any other sensitive key a
# bare value that is one of these words is read as `scheme credentials` and both are masked
# (so `token: Bearer abc` does not leak `abc`, at the price of one word of context when a
# secret happens to be such a word).
AUTH_SCHEMES = frozenset({
    "bearer", "basic", "token", "jwt", "digest", "negotiate", "ntlm", "oauth", "hmac", "apikey",
    "aws4-hmac-sha256", "sharedaccesssignature", "key",
})
# `name`/`value` pairs (ECS/SSM/CloudFormation dumps): the value is masked when the name is sensitive.
_PAIR_NAMES = frozenset({"name", "key", "parameter_key", "header", "header_name"})
_PAIR_VALUES = frozenset({"value", "parameter_value", "header_value"})

# A key, optionally quoted (also `\"key\"` inside an escaped JSON string), then `:`, `=`,
# `=>` or, for a quoted key, `,` (tuples such as `('Authorization', 'Bearer x')`). It starts
# after a non-word character or a literal `\n` escape; starting only there (not inside
# `a-b-c` or a run of backslashes) keeps the search linear.
_KEY = re.compile(
    r"""(?:(?<![A-Za-z0-9_.\-\\])|(?<=\\[nrt]))"""
    r"""(?P<quote>\\*["'`]?)(?P<key>-{0,2}[A-Za-z_][A-Za-z0-9_.\-]*)(?P=quote)"""
    r"""[ \t]*(?P<sep>=>|[:=]|,)[ \t]*""")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_STRING_PREFIX = re.compile(r"""[bBrRuUfF]{1,2}(?=["'])""")
_CALL = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*(?=[({\[])")
_BARE = re.compile(r"[^\s&]+")
# `name=value` right after a scheme word: parameters (Digest, AWS4-HMAC-SHA256), not token68
# (whose `=` is only trailing padding).
_PARAM = re.compile(r"""[A-Za-z0-9_.\-]+=(?![=\s,;)\]}]|$)""")
_WHITESPACE = re.compile(r"[ \t]+")
_TRAILING_CLOSERS = "\"'`)]},;"
_OPENERS = {"{": "}", "[": "]", "(": ")"}
_CLOSERS = frozenset(_OPENERS.values())

_PATTERNS = (
    (re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32,}(?![0-9A-Fa-f])"), "[hex]"),
    (re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}"), "[aws-key-id]"),
    (re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[jwt]"),
    (re.compile(r"(?<=://)([^\s/?#@:]*):[^\s/?#@]+@"), r"\1:[redacted]@"),
)
_TRACEBACK = "Traceback (most recent call last):"
# `ValueError: detail`, `botocore.exceptions.ClientError: ...`, or a bare `StopIteration`.
_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(?::|$)")


def _normalize(key: str) -> str:
    key = key.strip("-._").rsplit(".", 1)[-1]
    return _CAMEL.sub("_", key).lower().replace("-", "_")


def is_sensitive_key(key: str) -> bool:
    """Whether a key names a credential (rules in the module docstring).

    Public so that the structured (JSON) and the text paths, and the tests, share one rule.
    """
    name = _normalize(key)
    words = [word for word in name.split("_") if word]
    if not words:
        return False
    if name in _SENSITIVE_NAMES or any(word in _SENSITIVE_WORDS for word in words):
        return True
    return len(words) > 1 and words[-1] in _SENSITIVE_LAST_WORDS and "_".join(words) not in _NOT_CREDENTIALS


# --- value delimiting -------------------------------------------------------------------


def _quote_end(line: str, start: int) -> int | None:
    """Index after the string opened at `start` (`"`, `'`, backtick, or `\\"` escaped n times).

    A quote opened by n backslashes is closed by the same quote preceded by exactly n
    backslashes (how JSON-in-a-JSON-string nests); a plain quote honours `\\` escapes.
    None when the string does not close on this line: string literals never span lines.
    """
    depth = 0
    while line[start + depth] == "\\":
        depth += 1
    quote = line[start + depth]
    i = start + depth + 1
    if depth == 0:
        while i < len(line):
            if line[i] == "\\":
                i += 2
            elif line[i] == quote:
                return i + 1
            else:
                i += 1
        return None
    while True:
        i = line.find(quote, i)
        if i < 0:
            return None
        run = 0
        while line[i - 1 - run] == "\\":
            run += 1
        if run == depth:
            return i + 1
        i += 1


def _bracket_end(line: str, i: int, stack: list[str]) -> int | None:
    """Advance through `line` from `i` with the closers still expected in `stack`.

    Returns the index after the closer that empties the stack, or None when the line
    ends first (the caller then masks to the end of the line and carries `stack` to the
    next line: a pretty-printed secret spans lines). Quoted strings inside are skipped, so a
    `}` in a string closes nothing; an unterminated string or a mismatched closer makes the
    rest of the line undelimitable, so it yields None too.
    """
    n = len(line)
    while i < n:
        char = line[i]
        if char in _OPENERS:
            stack.append(_OPENERS[char])
        elif char in _CLOSERS:
            if char != stack[-1]:
                return None
            stack.pop()
            if not stack:
                return i + 1
        elif char in "\"'" or char == "\\":
            run_end = i
            while run_end < n and line[run_end] == "\\":
                run_end += 1
            if run_end == n or line[run_end] not in "\"'":
                i = run_end  # backslashes before anything but a quote: nothing opens
                continue
            end = _quote_end(line, i)  # also `\"...\"` strings of JSON nested in a string
            if end is None:
                return None
            i = end
            continue
        i += 1
    return None


def _bare_end(line: str, start: int) -> tuple[int, bool]:
    """End of a bare token at `start`, and whether a delimiter punctuation ended it.

    The token runs to whitespace or `&` (query strings); closing punctuation at its very end
    (`token=abc",` or `{secret=abc}`) is given back, but only there, so a quote or brace
    inside a secret does not cut it short.
    """
    match = _BARE.match(line, start)
    if match is None:
        return start, False
    end = match.end()
    trimmed = end
    while trimmed > start and line[trimmed - 1] in _TRAILING_CLOSERS:
        trimmed -= 1
    if trimmed == start:
        return end, False
    return trimmed, trimmed < end


class _Masker:
    """Scans lines in order, keeping the one piece of state that crosses lines: the
    closers still expected by a bracketed sensitive value that did not close."""

    def __init__(self) -> None:
        self.carry: list[str] = []

    def line(self, line: str) -> str:
        out: list[str] = []
        pos = 0
        if self.carry:
            end = _bracket_end(line, 0, self.carry)
            if end is None:
                return MARK if line.strip() else line
            self.carry = []
            out.append(MARK)
            pos = end
        pair_pending = False
        search_from = pos
        while True:
            match = _KEY.search(line, search_from)
            if match is None:
                break
            key, sep, quote = match.group("key"), match.group("sep"), match.group("quote")
            name = _normalize(key)
            sensitive = is_sensitive_key(key) or (pair_pending and name in _PAIR_VALUES)
            if sep == ",":
                # Only a quoted key opening a tuple/list is a pair: ('Authorization', 'Bearer x').
                opens_pair = _char_before(line, match.start()) in ("(", "[")
                if not (quote and opens_pair and _starts_quoted(line, match.end())):
                    search_from = match.start("key") + len(key)
                    continue
            pair_pending = False
            if not sensitive:
                if name in _PAIR_NAMES:
                    pair_pending = _quoted_name_is_sensitive(line, match.end())
                search_from = match.end()
                continue
            start = match.end()
            end, replacement = self._value(line, start, name)
            out.append(line[pos:start])
            out.append(replacement)
            pos = search_from = end
            if end >= len(line):
                break
        out.append(line[pos:])
        return "".join(out)

    def _value(self, line: str, start: int, name: str, scheme: bool = True) -> tuple[int, str]:
        """(end, replacement) for the value of a sensitive key that starts at `start`.

        `scheme` is False for the credentials after a scheme word, so `Bearer Bearer ...`
        does not recurse.
        """
        n = len(line)
        if start >= n:
            return start, ""
        prefix = _STRING_PREFIX.match(line, start)
        quote_at = prefix.end() if prefix else start
        if line[quote_at] in "\"'`\\" and _starts_quoted(line, quote_at):
            end = _quote_end(line, quote_at)
            if end is None:
                return n, MARK
            opener = line[start:quote_at] + _opening_delimiter(line, quote_at)
            return end, opener + MARK + _opening_delimiter(line, quote_at)
        call = _CALL.match(line, start)
        bracket_at = call.end() if call else start
        if line[bracket_at] in _OPENERS:
            stack = [_OPENERS[line[bracket_at]]]
            end = _bracket_end(line, bracket_at + 1, stack)
            if end is None:
                self.carry = stack
                return n, MARK
            if end < n and not line[end].isspace() and line[end] not in _TRAILING_CLOSERS + "&":
                end = _bare_end(line, end)[0]  # `{a}bc` is one value: do not leave `bc` behind
            return end, MARK
        if name in _COOKIE_NAMES:
            return n, MARK
        end, delimited = _bare_end(line, start)
        word = line[start:end]
        following = _WHITESPACE.match(line, end)
        more = following is not None and following.end() < n
        if not word:
            return start, ""
        if scheme and word.lower() in AUTH_SCHEMES and more and not delimited:
            cred = following.end() if following is not None else n
            if _PARAM.match(line, cred):
                # Digest / AWS4-HMAC-SHA256 parameters: commas and spaces inside; no reliable end.
                keep = word + " " if name in _AUTH_NAMES else ""
                return n, keep + MARK
            cred_end, replacement = self._value(line, cred, "", scheme=False)
            if name in _AUTH_NAMES:
                return cred_end, line[start:cred] + replacement
            return cred_end, MARK
        if name in _AUTH_NAMES and more and not delimited:
            # `Authorization: <unknown scheme> <credentials>`: where it ends cannot be told.
            return n, MARK
        return end, MARK


def _char_before(line: str, at: int) -> str:
    """The last non-blank character before `at` ("" at the start), without copying the line."""
    i = at - 1
    while i >= 0 and line[i] in " \t":
        i -= 1
    return line[i] if i >= 0 else ""


def _opening_delimiter(line: str, at: int) -> str:
    depth = 0
    while line[at + depth] == "\\":
        depth += 1
    return line[at:at + depth + 1]


def _starts_quoted(line: str, at: int) -> bool:
    prefix = _STRING_PREFIX.match(line, at)
    i = prefix.end() if prefix else at
    while i < len(line) and line[i] == "\\":
        i += 1
    return i < len(line) and line[i] in "\"'`"


def _quoted_name_is_sensitive(line: str, at: int) -> bool:
    """Whether the quoted string at `at` is a sensitive name (the `name` of a name/value pair).

    Looks at most 200 characters ahead: names are short, and an unbounded look for a closing
    quote on every `name:` would make a hostile line quadratic.
    """
    window = line[at:at + 200]
    if not _starts_quoted(window, 0):
        return False
    end = _quote_end(window, 0)
    if end is None:
        return False
    return is_sensitive_key(window[:end].strip("\\\"'`"))


def _split_ending(raw: str) -> tuple[str, str]:
    if raw.endswith("\r\n"):
        return raw[:-2], raw[-2:]
    if raw and raw[-1] in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029":
        return raw[:-1], raw[-1]
    return raw, ""


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def redact(text: str) -> str:
    """Mask credentials in `text` (rules in the module docstring).

    Line structure is kept (the same line breaks, so one output line per input line) and
    each line grows by at most `MAX_GROWTH` characters, so callers can budget the alert
    size from the input alone.
    """
    masker = _Masker()
    out = []
    for raw in text.splitlines(keepends=True):
        body, ending = _split_ending(raw)
        masked = masker.line(body)
        for pattern, replacement in _PATTERNS:
            masked = pattern.sub(replacement, masked)
        out.append(_cap(masked, len(body) + MAX_GROWTH) + ending)
    return "".join(out)


# --- summaries ---------------------------------------------------------------------------


def _mask_structure(value: Any) -> Any:
    """A JSON value with sensitive keys' values masked at any depth and strings redacted.

    null and booleans under a sensitive key are kept: they carry no secret, and
    `"token": null` is often the very cause of the error.
    """
    if isinstance(value, dict):
        pair_sensitive = any(_normalize(str(k)) in _PAIR_NAMES and isinstance(v, str) and is_sensitive_key(v)
                             for k, v in value.items())
        masked = {}
        for key, item in value.items():
            key_text = redact(str(key))
            sensitive = is_sensitive_key(str(key)) or (pair_sensitive and _normalize(str(key)) in _PAIR_VALUES)
            if sensitive and not (item is None or isinstance(item, bool)):
                masked[key_text] = MARK
            else:
                masked[key_text] = _mask_structure(item)
        return masked
    if isinstance(value, list):
        return [_mask_structure(item) for item in value]
    if isinstance(value, str):
        return redact(value)
    return value


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _summarize_json(data: dict[str, Any]) -> str:
    inner = data.get("message")
    error = data if ("errorMessage" in data or "errorType" in data) else (
        inner if isinstance(inner, dict) and ("errorMessage" in inner or "errorType" in inner) else None)
    if error is not None:
        # The Lambda runtime's own JSON record of an uncaught exception.
        detail = error.get("errorMessage", "")
        if not isinstance(detail, str):
            detail = json.dumps(_mask_structure(detail), default=str, ensure_ascii=False)
        head = redact(f"{error.get('errorType', 'Error')}: {detail}")
    elif "message" in data:
        head = redact(inner) if isinstance(inner, str) else json.dumps(
            _mask_structure(inner), default=str, ensure_ascii=False)
    else:
        return json.dumps(_mask_structure(data), default=str, ensure_ascii=False)
    extra = {key: _mask_structure(data[key]) for key in SUMMARY_KEYS if key in data}
    return f"{head} {json.dumps(extra, default=str, ensure_ascii=False)}" if extra else head


def _summarize_text(text: str) -> str:
    """The headline, plus the final exception line of a Python traceback when there is one.

    The Lambda runtime writes `[ERROR] Type: message` first and the traceback after it
    (joined by `\\r`); `logging.exception` writes the message first and `Type: message`
    after the traceback. Either way the type and the message are forwarded.
    """
    originals = text.splitlines()
    masked = redact(text).splitlines()
    useful = [i for i, line in enumerate(originals) if line.strip()]
    if not useful:
        return ""
    picked = [useful[0]]
    tracebacks = [i for i in useful if originals[i].strip() == _TRACEBACK]
    if tracebacks:
        # Frames are indented (the runtime indents with U+00A0, which isspace() also covers).
        after = [i for i in useful if i > tracebacks[-1] and not originals[i][:1].isspace()]
        if after and _EXCEPTION_LINE.match(originals[after[0]]):
            picked.append(after[0])
        if originals[picked[0]].strip() == _TRACEBACK:
            picked = picked[1:] or picked
    return " | ".join(_one_line(masked[i]) for i in dict.fromkeys(picked))


def summarize(message: str) -> str:
    """One redacted alert line for one log event's `message`.

    A JSON object gives its `message` (or the runtime's `errorType: errorMessage`) and the
    `SUMMARY_KEYS` it has, with sensitive keys masked at any depth; other text gives its
    headline and, after a traceback, the exception line. Never more than one line, and at
    most `MAX_GROWTH` characters longer than `message`.
    """
    text = message.strip()
    data: Any = None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = None
    summary = None
    if isinstance(data, dict):
        try:
            summary = _summarize_json(data)
        except RecursionError:  # nested deeper than the masking can walk: treat it as text
            summary = None
    if summary is None:
        summary = _summarize_text(text)
    return _cap(_one_line(summary), len(message) + MAX_GROWTH)
