"""``crashbt data fetch`` (issue 16.3) against a local Binance-shaped server on 127.0.0.1 that
replays recorded answers (tests/exchange_server.py, tests/fixtures/binance): no network.

The recorded klines are the rows of datasets/ethusdt_1d for 2026-01-01 .. 2026-02-28 without
2026-01-20 (a gap), so a fetched file must equal the bundled bars with that day missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from exchange_server import serve, urls

from backtest.cli import main
from backtest.config.data import DataConfig
from backtest.data.bars import load_bars
from backtest.data.external import load_external
from backtest.data.fetch import FetchRequest, fetch, target_path
from backtest.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
FEB10 = pd.Timestamp("2026-02-10T12:00:00Z")  # the server's clock: the 02-10 bar is still open
FEB28 = pd.Timestamp("2026-02-28T12:00:00Z")
GAP = pd.Timestamp("2026-01-20", tz="UTC")


def ms(moment: pd.Timestamp) -> int:
    return int(moment.value // 1_000_000)


def request(port: int, data_dir: Path, until: pd.Timestamp, **kw: object) -> FetchRequest:
    values = {"symbol": "ETH/USDT", "since": pd.Timestamp("2026-01-01", tz="UTC"), "until": until,
              "data_dir": data_dir, "page_limit": 10, "timeout_s": 10.0, "backoff_s": 0.001,
              "exchange_config": {"urls": urls(port)}, **kw}
    return FetchRequest("binance", **values)  # type: ignore[arg-type]


def bundled(start: str, end: str) -> pd.DataFrame:
    bars, _ = load_bars(DataConfig(dataset="ethusdt_1d", start=start, end=end))
    return bars.loc[bars.index != GAP, ["open", "high", "low", "close", "volume"]]


def manifest(data_dir: Path) -> dict:
    return json.loads((data_dir / "manifest.json").read_text())["files"]


def test_fetch_writes_a_validated_parquet_that_run_accepts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    with serve(ms(FEB10)) as (_, port):
        code = main(["data", "fetch", "binance", "ETH/USDT", "--since", "2026-01-01",
                     "--until", "2026-02-10T12:00:00Z", "--dir", str(data_dir), "--limit", "10",
                     "--ccxt", f"urls={json.dumps(urls(port))}"])
    out, err = capsys.readouterr()
    assert code == 0, err
    path = data_dir / "binance" / "ETHUSDT_1d.parquet"
    assert out.splitlines()[0].startswith(f"{path}: 39 new rows; 39 rows 2026-01-01T00:00:00Z "
                                          f".. 2026-02-09T00:00:00Z")
    assert "39 new rows, up to 2026-02-09 00:00 UTC" in err  # progress on stderr
    bars, info = load_bars(DataConfig(path=str(path)))
    pd.testing.assert_frame_equal(bars, bundled("2026-01-01", "2026-02-09"), check_freq=False)
    assert info.gaps == [(GAP, GAP, 1)]
    entry = manifest(data_dir)["binance/ETHUSDT_1d.parquet"]
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (entry["rows"], entry["first"], entry["last"]) == (
        39, "2026-01-01T00:00:00Z", "2026-02-09T00:00:00Z")
    assert entry["source"].startswith("ccxt ") and "binance fetch_ohlcv ETH/USDT" in entry["source"]
    assert entry["fetched_at"]
    # crashbt run takes the file as it is; the ETH seed trade is the bundled data's
    reports = tmp_path / "reports"
    assert main(["run", str(ROOT / "configs" / "eth_break_below_2200.toml"), "--out",
                 str(reports), "--set", "data.dataset=none", "--set", f"data.path={path}",
                 "--set", "data.symbol=ETHUSDT", "--set", "execution.fee_rate=0.0",
                 "--set", "execution.slippage_rate=0.0", "--set", "report.html=false"]) == 0
    (run_dir,) = reports.iterdir()
    trades = pd.read_csv(run_dir / "trades.csv")
    assert (trades.loc[0, "entry_time"], trades.loc[0, "entry_price"]) == (
        "2026-02-05T00:00:00Z", 2148.25)
    assert (trades.loc[0, "exit_time"], trades.loc[0, "exit_price"]) == (
        "2026-02-06T00:00:00Z", 1800.0)


def test_a_second_fetch_appends_only_the_new_bars(tmp_path: Path) -> None:
    with serve(ms(FEB10)) as (state, port):
        first = fetch(request(port, tmp_path, FEB10))
        before = pd.read_parquet(first.path)
        state.now_ms = ms(FEB28)
        asked = len(state.data_requests)
        second = fetch(request(port, tmp_path, FEB28))
        new_requests = state.data_requests[asked:]
    assert (first.added, second.added) == (39, 18)  # 2026-02-10 .. 2026-02-27
    assert f"startTime={ms(pd.Timestamp('2026-02-10', tz='UTC'))}" in new_requests[0]
    after = pd.read_parquet(second.path)
    pd.testing.assert_frame_equal(after.iloc[:39], before)
    bars, _ = load_bars(DataConfig(path=str(second.path)))
    pd.testing.assert_frame_equal(bars, bundled("2026-01-01", "2026-02-27"), check_freq=False)
    assert manifest(tmp_path)["binance/ETHUSDT_1d.parquet"]["rows"] == 57
    with serve(ms(FEB28)) as (state, port):  # nothing new: one request, nothing written
        third = fetch(request(port, tmp_path, FEB28))
        assert third.added == 0 and len(state.data_requests) == 1
    assert pd.read_parquet(third.path).equals(after)


def test_rate_limit_replies_and_error_pages_are_retried(tmp_path: Path) -> None:
    with serve(ms(FEB10)) as (state, port):
        state.faults.extend([429, 502, 429])
        result = fetch(request(port, tmp_path / "faulty", FEB10))
        faulty_requests = len(state.data_requests)
        clean = fetch(request(port, tmp_path / "clean", FEB10))
        clean_requests = len(state.data_requests) - faulty_requests
    assert faulty_requests == clean_requests + 3
    assert pd.read_parquet(result.path).equals(pd.read_parquet(clean.path))


def test_a_failure_that_persists_is_one_line_and_keeps_what_was_committed(
        tmp_path: Path) -> None:
    with serve(ms(FEB10)) as (state, port):
        fetch(request(port, tmp_path, pd.Timestamp("2026-01-15T00:00:00Z")))
        state.faults.extend([502] * 3)
        with pytest.raises(DataError, match=r"^data fetch: binance ETH/USDT: expected an "
                                            r"answer, found ExchangeNotAvailable after 3 tries "
                                            r"\(.*\); run the fetch again to resume$"):
            fetch(request(port, tmp_path, FEB10, retries=2))
        state.faults.append(400)
        with pytest.raises(DataError, match=r"expected ohlcv data, found BadSymbol"):
            fetch(request(port, tmp_path, FEB10))
    bars, _ = load_bars(DataConfig(path=str(target_path(request(0, tmp_path, FEB10)))))
    assert bars.index[-1] == pd.Timestamp("2026-01-14", tz="UTC")  # closes at until, 01-15


def test_an_unknown_exchange_is_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data fetch: exchange: expected a ccxt exchange id, "
                                          r"found 'binanse'; did you mean 'binance'\?"):
        fetch(FetchRequest("binanse", "ETH/USDT", data_dir=tmp_path))


KILLED_FETCH = """
import sys
import pandas as pd
from pathlib import Path
sys.path.insert(0, {tests!r})
from exchange_server import urls
from backtest.data.fetch import FetchRequest, fetch
fetch(FetchRequest("binance", "ETH/USDT", since=pd.Timestamp("2026-01-01", tz="UTC"),
                   until=pd.Timestamp({until!r}), data_dir=Path({data_dir!r}), page_limit=10,
                   timeout_s=60.0, exchange_config={{"urls": urls({port})}}))
"""


def test_a_kill_mid_fetch_loses_nothing_committed(tmp_path: Path) -> None:
    with serve(ms(FEB28)) as (state, port):
        state.hold_at = 4  # pages 1..3 are committed before the 4th request is sent
        script = KILLED_FETCH.format(tests=str(Path(__file__).parent), until=str(FEB28),
                                     data_dir=str(tmp_path), port=port)
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            assert state.reached.wait(120), "the fetch never reached its 4th request"
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=60) == -signal.SIGKILL
        finally:
            state.release.set()
        path = tmp_path / "binance" / "ETHUSDT_1d.parquet"
        bars, _ = load_bars(DataConfig(path=str(path)))
        pd.testing.assert_frame_equal(bars, bundled("2026-01-01", "2026-01-31"),
                                      check_freq=False)  # 30 rows: 3 pages of 10
        assert manifest(tmp_path)["binance/ETHUSDT_1d.parquet"]["sha256"] == \
            hashlib.sha256(path.read_bytes()).hexdigest()
        assert sorted(p.name for p in path.parent.iterdir()) == ["ETHUSDT_1d.parquet"]
        state.hold_at = None
        resumed = fetch(request(port, tmp_path, FEB28))
    assert resumed.added == 27
    bars, _ = load_bars(DataConfig(path=str(path)))
    pd.testing.assert_frame_equal(bars, bundled("2026-01-01", "2026-02-27"), check_freq=False)


def test_funding_is_fetched_and_pays_an_eth_perp(tmp_path: Path) -> None:
    with serve(ms(FEB10)) as (_, port):
        result = fetch(request(port, tmp_path, FEB10, kind="funding", symbol="ETH/USDT:USDT",
                               page_limit=50))
    assert result.path == tmp_path / "binance" / "ETHUSDT_funding.parquet"
    series = load_external("funding_8h", path=str(result.path))
    # 2026-01-01T00 .. 2026-02-10T08 every 8 hours, Binance's ms jitter cut to whole seconds
    assert len(series) == 3 * 40 + 2 and result.entry["rows"] == len(series)
    assert (series.index.asi8 % 1_000_000_000 == 0).all()
    assert series.loc["2026-02-05T08:00", "funding_rate"] == -0.00013688
    reports = tmp_path / "reports"
    assert main(["run", str(ROOT / "configs" / "break_below_74k_perp.toml"), "--out",
                 str(reports), "--set", "data.dataset=ethusdt_1d", "--set", "data.start=2026-01-05",
                 "--set", "data.end=2026-02-09", "--set", "strategy.params.level=2200.0",
                 "--set", "strategy.params.target=1800.0", "--set",
                 "strategy.params.stop_level=2400.0", "--set",
                 f"external.funding_8h.path={result.path}", "--set",
                 "execution.maintenance_tiers=[[5e6, 0.005, 0, 50]]",
                 "--set", "report.html=false"]) == 0
    (run_dir,) = reports.iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["derivatives"]["funding"]["name"] == "ETHUSDT_funding"
    assert report["metrics"]["funding_paid"] != 0.0
