"""Issue 14's figures for `invoke bench`: what a TradingView-shaped token request costs the
webhook, cold and warm, and how fast the exchange relay forwards ticks.

Token requests. TradingView posts one alert per request: a URL and a JSON body
`{"source", "token", "symbol", "exchange", "price", "timestamp"}`, no custom headers. The
local environment has a dev-only token source (`environments/local.yaml`,
`local_webhook_secrets`), which the embedded stack seeds into its Secrets Manager; the
requests use it.
- warm: requests through the local deployment's webhook URL (its function URL stand-in and
  its warm workers): round trip as the sender sees it, on this machine;
- cold: a fresh worker of the local Lambda runtime (`emulator.runtime.LocalFunction`, the
  runtime's Python 3.12, the deployed function's configuration and zip), started for one
  request and timed from process start: its init (unpack, interpreter start, handler
  import) and its first request (which also builds the clients and reads the secrets
  document from Secrets Manager). Each fresh worker then serves a few more requests,
  which give the warm handler time without the URL stand-in in between.
p50/p99 are `statistics.quantiles` over the requests made (the row says how many: with
fewer than 100, p99 is close to the maximum).

The relay. `price_relay.bench.measure` forwards loopback Binance tickers through a real relay
to a webhook stand-in that only checks signatures (the relay's own ceiling); here the same
frames also go through the embedded stack's webhook URL (the relay's ceiling on this
machine's emulated pipeline), counting the webhook function's invocations per tick.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TOKEN_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def quantile_summary(values: list[float]) -> dict[str, float]:
    """n, p50, p99, max (ms). p99 of fewer than 100 values leans on the largest ones."""
    if not values:
        return {"n": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return {"n": len(values), "p50_ms": statistics.median(values), "p99_ms": cuts[98], "max_ms": max(values)}


def tradingview_body(source: str, token: str, index: int, now_ms: int) -> bytes:
    """One alert as TradingView sends it for the recommended template (distinct time per index)."""
    stamp = datetime.fromtimestamp((now_ms - 60_000 + index) / 1000, UTC)
    body = {"source": source, "token": token, "symbol": TOKEN_SYMBOLS[index % len(TOKEN_SYMBOLS)],
            "exchange": "BINANCE", "price": f"{64000 + index * 0.25:.2f}",
            "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    return json.dumps(body).encode()


def _accepted(status: int, payload: dict[str, Any]) -> None:
    if status != 200 or payload.get("accepted") != 1:
        raise RuntimeError(f"token request not accepted: {status} {str(payload)[:200]}")


def _post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def bench_token_requests(stack: Any, cold_runs: int, warm_requests: int, warm_per_worker: int) -> dict[str, Any]:
    """Cold and warm handler time of single-update token requests on the embedded stack."""
    from delivery.build import build_all, host_platform, runtime_python
    from delivery.paths import BUILD_DIR
    from emulator.function_url import url_event
    from emulator.runtime import LocalFunction, emulator_environment, provided_libraries, unpack

    info = stack.info
    if info.token_source is None:
        raise RuntimeError("environments/local.yaml has no local token source (local_webhook_secrets)")
    source, token = info.token_source
    now_ms = int(time.time() * 1000)
    index = 0

    url_times = []
    for _ in range(warm_requests + 1):
        index += 1
        body = tradingview_body(source, token, index, now_ms)
        started = time.perf_counter()
        status, payload = _post(info.webhook_url, body)
        elapsed = (time.perf_counter() - started) * 1000
        _accepted(status, payload)
        if index > 1:  # the first may meet a worker that has not served yet
            url_times.append(elapsed)

    figures: dict[str, Any] = {"source": source, "via": "local token source of environments/local.yaml",
                               "warm_url_round_trip_ms": quantile_summary(url_times)}
    deployed = stack.functions.get("webhook_processor")
    if deployed is None:  # LocalStack runs the functions itself: no local worker to start cold
        return figures
    python = runtime_python().executable
    runtime_dir = provided_libraries(BUILD_DIR / "local" / "runtime", python)
    zip_path = build_all(host_platform())["webhook_processor"].path
    endpoint = stack.proxy.endpoint if stack.proxy is not None else info.endpoint
    base_env = emulator_environment(endpoint, info.config.region)
    inits, unpacks, firsts, colds, warm = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as folder:
        for run in range(cold_runs):
            started = time.perf_counter()  # the part of init that is unpacking the zip, measured alone
            unpack(zip_path, Path(folder) / f"unpack-{run}")
            unpacks.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            function = LocalFunction(deployed.spec, zip_path, Path(folder) / str(run), runtime_dir, base_env,
                                     lambda name, line: None, python, concurrency=1)
            ready = time.perf_counter()
            try:
                for request in range(warm_per_worker + 1):
                    index += 1
                    event = url_event("POST", "/", {"Content-Type": "application/json"},
                                      tradingview_body(source, token, index, now_ms), "127.0.0.1")
                    sent = time.perf_counter()
                    response = function.invoke(event)
                    done = time.perf_counter()
                    _accepted(response["statusCode"], json.loads(response["body"]))
                    if request == 0:
                        inits.append((ready - started) * 1000)
                        firsts.append((done - sent) * 1000)
                        colds.append((done - started) * 1000)
                    else:
                        warm.append((done - sent) * 1000)
            finally:
                function.close()
    return {**figures, "cold_init_ms": quantile_summary(inits), "cold_unpack_ms": quantile_summary(unpacks),
            "cold_first_request_ms": quantile_summary(firsts),
            "cold_total_ms": quantile_summary(colds), "warm_handler_ms": quantile_summary(warm)}


# ---- the relay ------------------------------------------------------------------------------------

def bench_relay_loopback(ticks: int) -> dict[str, Any]:
    """`price_relay.bench.measure`: the relay against a loopback webhook stand-in."""
    from price_relay.bench import measure

    result = measure(ticks)
    return {key: result[key] for key in ("ticks", "seconds", "ticks_per_second", "webhook_requests",
                                         "webhook_requests_per_tick", "batch_size", "spool_synchronous")}


async def _relay_to(url: str, source: str, secret: str, ticks: int, timeout: float) -> dict[str, Any]:
    from price_relay.bench import binance_ticker, forward

    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")
    base = int(time.time() * 1000) - ticks - 60_000
    frames = [binance_ticker(i, symbols[i % len(symbols)], base + i) for i in range(ticks)]
    elapsed, snapshot, _ = await forward(frames, symbols, url, source, secret, timeout=timeout)
    return {"seconds": elapsed, "counters": snapshot}


def bench_relay_through_stack(stack: Any, ticks: int, timeout: float = 300.0) -> dict[str, Any]:
    """The relay forwarding `ticks` loopback tickers to the embedded stack's webhook URL
    (HMAC, the local signing source); webhook invocations counted at the local runtime."""
    info = stack.info
    function = stack.functions.get("webhook_processor")
    before = function.invocations if function is not None else 0
    outcome = asyncio.run(_relay_to(info.webhook_url, info.secret_source, info.secret, ticks, timeout))
    counters = outcome["counters"]
    # Counted where the function runs; on LocalStack (no local worker) the relay's own POSTs.
    invocations = function.invocations - before if function is not None else counters["requests"]
    return {"ticks": ticks, "seconds": round(outcome["seconds"], 3),
            "ticks_per_second": round(ticks / outcome["seconds"], 1), "webhook_invocations": invocations,
            "webhook_invocations_per_tick": round(invocations / ticks, 4), "relay_requests": counters["requests"],
            "accepted": counters["accepted"], "duplicates": counters["duplicates"],
            "set_aside": counters["set_aside"]}
