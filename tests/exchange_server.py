"""A local Binance-shaped HTTP server on 127.0.0.1 replaying the answers in tests/fixtures/binance.

It answers ``exchangeInfo`` (spot, USDT-M, COIN-M), ``/api/v3/klines`` and ``/fapi/v1/fundingRate``
the way Binance does: rows from ``startTime`` on, at most ``limit``, and only those that exist
at the server's clock ``now_ms`` (the bar open at ``now_ms`` is returned too, still open). A test
can queue faults (a 429 rate-limit reply, an HTML error page, a 400) for the next data requests,
and can hold the N-th data request until it says so (to kill a fetch at a known point).
``urls(port)`` gives the ccxt ``urls`` override that points ccxt's binance at the server.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

FIXTURES = Path(__file__).parent / "fixtures" / "binance"
HOLD_TIMEOUT_S = 120.0  # a held request gives up after this (no test waits that long)
INFO = {"/api/v3/exchangeInfo": "exchangeInfo_spot.json",
        "/fapi/v1/exchangeInfo": "exchangeInfo_usdm.json",
        "/dapi/v1/exchangeInfo": "exchangeInfo_coinm.json"}
FAULTS = {429: ("rate_limit_429.json", "application/json"),
          502: ("error_502.html", "text/html"),
          400: ("bad_symbol_400.json", "application/json")}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class State:
    """What the server knows and what the test asked it to do."""

    now_ms: int
    klines: list[list[Any]] = field(default_factory=lambda: fixture("klines_ETHUSDT_1d.json"))
    funding: list[dict[str, Any]] = field(
        default_factory=lambda: fixture("fundingRate_ETHUSDT.json"))
    faults: deque[int] = field(default_factory=deque)
    data_requests: list[str] = field(default_factory=list)
    hold_at: int | None = None  # hold the hold_at-th data request (1-based)
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(BaseHTTPRequestHandler):
    state: State

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read ``state.data_requests`` instead."""

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path in INFO:
            return self._send(200, (FIXTURES / INFO[url.path]).read_bytes(), "application/json")
        if url.path not in ("/api/v3/klines", "/fapi/v1/fundingRate"):
            return self._send(404, b'{"code":-1100,"msg":"Not found."}', "application/json")
        with self.state.lock:
            self.state.data_requests.append(self.path)
            count = len(self.state.data_requests)
            fault = self.state.faults.popleft() if self.state.faults else None
        if count == self.state.hold_at:
            self.state.reached.set()
            self.state.release.wait(HOLD_TIMEOUT_S)
        if fault is not None:
            name, kind = FAULTS[fault]
            return self._send(fault, (FIXTURES / name).read_bytes(), kind)
        start = int(query.get("startTime", 0))
        limit = int(query.get("limit", 500))
        if url.path == "/api/v3/klines":
            rows: list[Any] = [k for k in self.state.klines
                               if start <= k[0] <= self.state.now_ms]
        else:
            rows = [f for f in self.state.funding
                    if start <= f["fundingTime"] <= self.state.now_ms]
        return self._send(200, json.dumps(rows[:limit]).encode(), "application/json")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        if status == 429:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serve(now_ms: int) -> Iterator[tuple[State, int]]:
    """Run the server on a free port of 127.0.0.1; yield its state and port."""
    state = State(now_ms=now_ms)
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, server.server_address[1]
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def urls(port: int) -> dict[str, Any]:
    """ccxt ``urls`` override: every binance API base on the local server (same paths)."""
    import ccxt

    base = f"http://127.0.0.1:{port}"
    api = {key: base + "/" + value.split("/", 3)[3]
           for key, value in ccxt.binance().urls["api"].items()}
    return {"api": api}
