"""The webhook's symbol rules, used by the relay at start.

The relay must not spool a symbol the webhook will always refuse (each of its ticks would
be set aside: ~86,000 rows a day per symbol at one tick a second) or store under an
invented name. So it checks its symbols with the webhook's own module
(`functions.webhook_processor.symbols`, standard library only, one owner) rather than a
copy of its rules. That module ships with the pipeline's code: the relay runs from the
project tree (`invoke relay`, the tests) or with the project root on PYTHONPATH; an
image built from relay/ alone must add `functions/webhook_processor/{symbols,kraken_names,exchanges}.py`
and the two `__init__.py` files above them.
"""

from __future__ import annotations

from functions.webhook_processor.symbols import exchange_pair


def stored_symbol(native: str) -> str:
    """The BASE-QUOTE symbol the webhook stores for an exchange's own pair name; ValueError
    (one line, the webhook's reason) when the webhook would refuse it or invent a symbol."""
    try:
        return exchange_pair(native)
    except ValueError as error:
        raise ValueError(f"{native[:40]!r}: the webhook would not store it under a real symbol ({error})") from None
