"""The enricher's mean and standard deviation are the standard library's, bit for bit.

`indicators.fmean` and `indicators.stdev` replace `statistics.fmean` and `statistics.stdev`
to keep `statistics` (and `fractions`) off the enricher's cold start; the stored indicators,
and the pandas comparison in docs/candles-and-indicators.md, must not move by one ulp.
"""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.price_enricher.indicators import fmean, stdev

finite = st.floats(allow_nan=False, allow_infinity=False)
# Log returns as the enricher sees them (prices within DynamoDB's range), and anything finite.
log_returns = st.floats(min_value=-600, max_value=600, allow_nan=False)


def outcome(function, values):
    """The result's repr (so -0.0, 0.0 and NaN compare exactly), or the error's type and text."""
    try:
        return repr(function(values))
    except Exception as error:
        return type(error), str(error)


@given(st.lists(finite | log_returns, min_size=2, max_size=40))
def test_stdev_is_statistics_stdev(values):
    assert outcome(stdev, values) == outcome(statistics.stdev, values)


@given(st.lists(finite, min_size=1, max_size=40))
def test_fmean_is_statistics_fmean(values):
    assert outcome(fmean, values) == outcome(statistics.fmean, values)


def test_random_walks_agree_bit_for_bit():
    generator = random.Random(11)
    for _ in range(2000):
        price, prices = generator.uniform(1e-6, 1e6), []
        for _ in range(21):
            price *= math.exp(generator.gauss(0, generator.choice([1e-6, 1e-3, 0.05, 2.0])))
            prices.append(price)
        returns = [math.log(b / a) for a, b in zip(prices, prices[1:], strict=False)]
        assert stdev(returns) == statistics.stdev(returns)
        assert fmean(prices[-5:]) == statistics.fmean(prices[-5:])


@pytest.mark.parametrize("values", [[], [1.0], [math.inf, 1.0], [math.nan, 1.0, 2.0], [-1e308, 1e308]])
def test_degenerate_input_gets_the_standard_librarys_answer_or_error(values):
    assert outcome(stdev, values) == outcome(statistics.stdev, values)
    assert outcome(fmean, values) == outcome(statistics.fmean, values)


def test_constant_and_tiny_series():
    for values in ([5.0] * 20, [5e-324, 1e-323, 0.0], [1e-300, -1e-300, 2e-300], [0.1, 0.2, 0.3]):
        assert stdev(values) == statistics.stdev(values)
