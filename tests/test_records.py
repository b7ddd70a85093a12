"""`Record` keeps what the frozen dataclasses it replaced gave: immutability, value equality and
hashing, the same repr, keyword and positional construction with defaults, copies and pickles."""

from __future__ import annotations

import copy
import pickle
from dataclasses import FrozenInstanceError, dataclass
from decimal import Decimal

import pytest

from functions.price_enricher.indicators import Windows
from functions.price_enricher.planner import Failed, SymbolPlan
from functions.shared.price_update import PriceUpdate


@dataclass(frozen=True)
class DataclassUpdate:
    """PriceUpdate as it was (a frozen dataclass), for its repr, equality and hash."""

    symbol: str
    event_ms: int
    price: Decimal
    exchange: str
    source: str
    received_at_ms: int
    volume: Decimal | None = None
    bid: Decimal | None = None
    ask: Decimal | None = None
    volume_24h: Decimal | None = None
    trades: Decimal | None = None


ARGS = ("BTC-USD", 1_700_000_000_000, Decimal("64000.5"), "binance", "feed", 1_700_000_000_040)


def test_repr_equality_and_hash_are_the_dataclasss():
    update, reference = PriceUpdate(*ARGS, volume=Decimal("1.5")), DataclassUpdate(*ARGS, volume=Decimal("1.5"))
    assert repr(update) == repr(reference).replace("DataclassUpdate", "PriceUpdate")
    assert update == PriceUpdate(*ARGS, volume=Decimal("1.5"))
    assert update != PriceUpdate(*ARGS) and update != reference and update != tuple(ARGS)
    assert hash(update) == hash(PriceUpdate(*ARGS, volume=Decimal("1.5")))
    assert len({update, PriceUpdate(*ARGS, volume=Decimal("1.5")), PriceUpdate(*ARGS)}) == 2


def test_keywords_positions_and_defaults():
    assert PriceUpdate(*ARGS) == PriceUpdate(symbol=ARGS[0], event_ms=ARGS[1], price=ARGS[2], exchange=ARGS[3],
                                             source=ARGS[4], received_at_ms=ARGS[5], volume=None, bid=None, ask=None)
    assert Windows() == Windows((5, 20), (12, 26), (20,)) and Windows().history_needed == 20
    assert SymbolPlan(failed=(Failed("1", "x"),)).stop == "none"
    with pytest.raises(TypeError):
        PriceUpdate(*ARGS[:5])


@pytest.mark.parametrize("record", [PriceUpdate(*ARGS), Windows(), Failed("7", "why")])
def test_records_are_immutable(record):
    name = record.__slots__[0]
    with pytest.raises(FrozenInstanceError):
        setattr(record, name, "other")
    with pytest.raises(FrozenInstanceError):
        delattr(record, name)
    with pytest.raises(FrozenInstanceError):
        record.not_a_field = 1
    assert not hasattr(record, "__dict__")


@pytest.mark.parametrize("record", [PriceUpdate(*ARGS, bid=Decimal("1")), Windows(sma=(3,)), Failed("7", "why")])
def test_copies_and_pickles_are_equal(record):
    assert copy.copy(record) == record
    assert copy.deepcopy(record) == record
    assert pickle.loads(pickle.dumps(record)) == record


def test_the_update_survives_its_dead_letter_message():
    update = PriceUpdate(*ARGS, volume=Decimal("0"), ask=Decimal("64001"))
    assert PriceUpdate.from_message(update.to_message()) == update
