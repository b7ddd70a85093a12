"""What `invoke local` prints: the lines the issues name (`token source: ...`, `local dev token: ...`,
`price API URL: ...`) and the credentials that sign for the price API locally."""

from __future__ import annotations

from delivery.local import StackInfo, banner
from emulator import session
from environments.config import load_config


def test_the_banner_names_the_token_source_its_token_and_the_price_api():
    info = StackInfo(load_config("local"), "http://127.0.0.1:5000", {"table_name": "crypto-prices-local"},
                     "http://127.0.0.1:6001/", "local-dev", "dev-secret-1", "http://127.0.0.1:6002/",
                     ("local-tradingview", "dev-token-2"))
    lines = banner(info).splitlines()
    assert "token source: local-tradingview" in lines
    assert "local dev token: dev-token-2  (dev-only)" in lines
    assert "price API URL: http://127.0.0.1:6002/" in lines
    assert "webhook URL:        http://127.0.0.1:6001/" in lines
    signing = next(line for line in lines if line.startswith("price API signing:"))
    assert session.ACCESS_KEY_ID in signing and session.SECRET_ACCESS_KEY in signing


def test_without_a_token_source_the_banner_says_so():
    info = StackInfo(load_config("local"), "http://127.0.0.1:5000", {"table_name": "t"}, "http://u/", "s", "x")
    assert "token source: -" in banner(info).splitlines()
