"""User bar files as people have them (issue 16.5): yfinance, Binance exports with a header,
CCXT dumps and any header named in ``[data.columns]``; and switching a config's source with
``--set data.dataset=none`` / ``data.path``. Every file is written here from the bundled
ETHUSDT 1d bars, so each must load to exactly the same bars (and trades) as the bundled dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from backtest.cli import main
from backtest.config.data import DataConfig
from backtest.config.loader import load_config
from backtest.data.bars import load_bars
from backtest.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
ETH_CONFIG = ROOT / "configs" / "eth_break_below_2200.toml"
NO_COSTS = ["--set", "execution.fee_rate=0.0", "--set", "execution.slippage_rate=0.0",
            "--set", "report.html=false"]


@pytest.fixture(scope="module")
def eth() -> pd.DataFrame:
    bars, _ = load_bars(DataConfig(dataset="ethusdt_1d", start="2025-06-01", end="2026-03-31"))
    return bars[["open", "high", "low", "close", "volume"]]


def yfinance_csv(bars: pd.DataFrame, path: Path) -> Path:
    """yfinance's daily download: Date (a UTC calendar day), Open..Close, Adj Close, Volume."""
    frame = pd.DataFrame({"Date": bars.index.strftime("%Y-%m-%d"), "Open": bars["open"],
                          "High": bars["high"], "Low": bars["low"], "Close": bars["close"],
                          "Adj Close": bars["close"], "Volume": bars["volume"]})
    frame.to_csv(path, index=False)
    return path


def ms(bars: pd.DataFrame) -> pd.Series:
    return pd.Series(bars.index.asi8 // 1_000_000, index=bars.index)


def run_report(args: list[str], tmp_path: Path) -> dict:
    out = tmp_path / "reports"
    assert main(["run", *args, "--out", str(out), *NO_COSTS]) == 0
    (report,) = out.glob("*/report.json")
    return json.loads(report.read_text())


def test_a_yfinance_csv_runs_unchanged_and_trades_like_the_bundled_data(
        eth: pd.DataFrame, tmp_path: Path) -> None:
    path = yfinance_csv(eth, tmp_path / "ETH-USD.csv")
    from_file = run_report([str(ETH_CONFIG), "--set", f"data.path={path}",
                            "--set", "data.symbol=ETHUSDT"], tmp_path / "file")
    bundled = run_report([str(ETH_CONFIG)], tmp_path / "bundled")
    assert from_file["config"]["data"]["dataset"] is None
    assert from_file["dataset"]["name"] == "ETH-USD"
    assert from_file["metrics"] == bundled["metrics"]
    assert from_file["metrics"]["n_closed_trades"] == 1


@pytest.mark.parametrize("style", ["yfinance", "binance_header", "ccxt", "mapped", "parquet"])
def test_each_header_style_loads_the_same_bars(style: str, eth: pd.DataFrame,
                                               tmp_path: Path) -> None:
    columns: dict[str, str] = {}
    if style == "yfinance":
        path = yfinance_csv(eth, tmp_path / "eth.csv")
    elif style == "binance_header":  # Binance's kline export with its header row
        path = tmp_path / "ETHUSDT-1d.csv"
        pd.DataFrame({"open_time": ms(eth), **{c: eth[c] for c in eth},
                      "close_time": ms(eth) + 86_399_999, "quote_volume": 0.0, "count": 7,
                      "taker_buy_volume": 0.0, "taker_buy_quote_volume": 0.0,
                      "ignore": 0}).to_csv(path, index=False)
    elif style == "ccxt":  # exchange.fetch_ohlcv rows with the field names of its docs
        path = tmp_path / "eth_ccxt.csv"
        pd.DataFrame({"timestamp": ms(eth), **{c: eth[c] for c in eth}}).to_csv(path,
                                                                               index=False)
    elif style == "mapped":
        path = tmp_path / "own.csv"
        columns = {"timestamp": "when", "open": "o", "high": "h", "low": "l", "close": "c",
                   "volume": "qty"}
        pd.DataFrame({"when": eth.index.strftime("%Y-%m-%dT%H:%M:%SZ"), "o": eth["open"],
                      "h": eth["high"], "l": eth["low"], "c": eth["close"],
                      "qty": eth["volume"]}).to_csv(path, index=False)
    else:
        path = tmp_path / "eth.parquet"
        frame = eth.rename(columns=str.capitalize)
        frame.index = frame.index.rename("Date")
        frame.to_parquet(path)
    bars, info = load_bars(DataConfig(path=str(path), columns=columns))
    pd.testing.assert_frame_equal(bars[list(eth.columns)], eth, check_freq=False)
    assert info.timeframe == "1d" and info.rows == len(eth)


def test_a_mapped_header_that_is_not_in_the_file_names_the_key(eth: pd.DataFrame,
                                                              tmp_path: Path) -> None:
    path = yfinance_csv(eth, tmp_path / "eth.csv")
    with pytest.raises(DataError, match=r"eth.csv: data.columns.timestamp: expected a column "
                                        r"named 'Datum', found columns Date, Open, High, Low, "
                                        r"Close, Adj Close, Volume; did you mean 'Date'\?"):
        load_bars(DataConfig(path=str(path), columns={"timestamp": "Datum"}))


def test_two_columns_for_one_field_are_refused(eth: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "both.csv"
    pd.DataFrame({"Date": eth.index.strftime("%Y-%m-%d"), "timestamp": ms(eth),
                  **{c: eth[c] for c in eth}}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column 'timestamp': expected one column for "
                                        r"'timestamp', found two; name the one to use"):
        load_bars(DataConfig(path=str(path)))
    bars, _ = load_bars(DataConfig(path=str(path), columns={"timestamp": "timestamp"}))
    assert bars.index.equals(eth.index)


def test_naive_datetimes_are_still_refused_but_calendar_days_are_utc(tmp_path: Path) -> None:
    path = tmp_path / "naive.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n2026-01-01T00:00:00,1,2,1,2,5\n"
                    "2026-01-02T00:00:00,2,3,2,3,5\n")
    with pytest.raises(DataError, match=r"row 1: column 'timestamp': expected an explicit UTC "
                                        r"offset"):
        load_bars(DataConfig(path=str(path)))
    path.write_text("Date,Open,High,Low,Close,Volume\n2026-01-01,1,2,1,2,5\n2026-01-02,2,3,2,3,5\n")
    bars, _ = load_bars(DataConfig(path=str(path)))
    assert list(bars.index) == [pd.Timestamp("2026-01-01", tz="UTC"),
                                pd.Timestamp("2026-01-02", tz="UTC")]


def test_a_path_replaces_the_parents_dataset(eth: pd.DataFrame, tmp_path: Path) -> None:
    path = yfinance_csv(eth, tmp_path / "eth.csv")
    child = tmp_path / "child.toml"
    child.write_text(f'extends = "{ETH_CONFIG}"\n[data]\npath = "{path}"\n')
    assert load_config(child).data.dataset is None
    assert load_config(child).data.path == str(path)
    for sets in ([f"data.path={path}"], ["data.dataset=none", f"data.path={path}"],
                 [f"data.path={path}", "data.dataset=none"]):
        cfg = load_config(ETH_CONFIG, sets)
        assert (cfg.data.dataset, cfg.data.path) == (None, str(path)), sets
    back = load_config(child, ["data.dataset=ethusdt_1d"])
    assert (back.data.dataset, back.data.path) == ("ethusdt_1d", None)
