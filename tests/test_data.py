"""backtest.data: bundled datasets (hash-pinned), user files in every format, validation errors
that name file and row, gaps reported not filled, slicing. Real data from datasets/."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.config.data import DataConfig
from backtest.data.bars import DataWarning, load_bars
from backtest.data.files import datasets_dir, list_datasets, manifest, parse_timestamps
from backtest.errors import ConfigError, DataError
from backtest.types import OHLCV
from scripts.bundle_datasets import build, shared_data_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def btc_1h() -> tuple[pd.DataFrame, object]:
    return load_bars(DataConfig(dataset="btcusdt_1h"))


@pytest.fixture(scope="module")
def crash_week(btc_1h) -> pd.DataFrame:
    """2026-02-01 .. 2026-02-07 of bundled BTCUSDT 1h: the reference for the user-file tests."""
    return btc_1h[0].loc["2026-02-01":"2026-02-07 23:00"]


# ---------------------------------------------------------------- bundled datasets


def test_bundled_1h_loads_typed_and_matches_a_known_row(btc_1h) -> None:
    bars, info = btc_1h
    assert isinstance(bars.index, pd.DatetimeIndex) and str(bars.index.tz) == "UTC"
    assert bars.index.name == "timestamp"
    assert list(bars.columns[:5]) == list(OHLCV)
    assert set(bars.dtypes) == {np.dtype("float64")}
    assert (info.rows, info.timeframe, info.freq, info.symbol) == (72866, "1h", "1h", "BTCUSDT")
    assert info.sha256 == manifest()["btcusdt_1h"]["sha256"]
    # SOURCES.md: 2026-02-05T12:00:00Z, 70318.35, 70603.49, 69163, 69563.57 (first close < 70k)
    row = bars.loc["2026-02-05 12:00"]
    assert row[["open", "high", "low", "close"]].tolist() == [70318.35, 70603.49, 69163, 69563.57]


def test_gaps_are_reported_not_filled(btc_1h) -> None:
    bars, info = btc_1h
    gap = pd.Timestamp("2023-03-24T13:00Z")
    assert gap not in bars.index
    assert (gap, gap, 1) in info.gaps
    assert len(info.gaps) == 27  # SOURCES.md: 27 gaps in the 1h data
    # the largest: 2018-02-08T01 .. 2018-02-09T09 is 24 + 9 = 33 bars
    largest = max(info.gaps, key=lambda g: g[2])
    assert largest == (pd.Timestamp("2018-02-08T01:00Z"), pd.Timestamp("2018-02-09T09:00Z"), 33)
    # bars + missing bars = the full hourly grid from first to last
    span_hours = (info.last - info.first) / pd.Timedelta("1h") + 1
    assert info.rows + sum(g[2] for g in info.gaps) == span_hours


def test_15m_gap_and_daily_without_gaps() -> None:
    _, info15 = load_bars(DataConfig(dataset="ethusdt_15m", start="2023-03-24",
                                     end="2023-03-25"))
    assert info15.freq == "15min"
    assert info15.gaps == [(pd.Timestamp("2023-03-24T12:45Z"), pd.Timestamp("2023-03-24T13:45Z"),
                            5)]
    daily, info1d = load_bars(DataConfig(dataset="btcusdt_1d"))
    assert (info1d.freq, info1d.gaps, info1d.rows) == ("1D", [], 3178)
    assert daily["high"].max() == 126199.63  # the ATH, 2025-10-06
    assert daily["high"].idxmax() == pd.Timestamp("2025-10-06T00:00Z")


def test_slice_is_inclusive_by_open_time_and_keeps_gaps_inside() -> None:
    bars, info = load_bars(DataConfig(dataset="btcusdt_1h", start="2026-02-05",
                                      end="2026-02-06"))
    # 2026-02-05T00:00 .. 2026-02-06T00:00 inclusive = 24 + 1 bars
    assert len(bars) == 25 == info.rows
    assert (info.first, info.last) == (bars.index[0], bars.index[-1])
    assert bars.index[-1] == pd.Timestamp("2026-02-06T00:00Z") and info.gaps == []
    _, around_gap = load_bars(DataConfig(dataset="btcusdt_1h", start="2023-03-24T12:00Z",
                                         end="2023-03-24T14:00Z"))
    assert around_gap.rows == 2 and around_gap.gaps[0][2] == 1
    _, after_gap = load_bars(DataConfig(dataset="btcusdt_1h", start="2023-03-24T14:00Z",
                                        end="2023-03-24T16:00Z"))
    assert after_gap.gaps == []


@pytest.mark.parametrize(("start", "end"), [("2030-01-01", "2030-02-01"),
                                            ("2010-01-01", "2011-01-01"),
                                            ("2023-03-24T13:00Z", "2023-03-24T13:30Z")])
def test_slice_outside_or_empty_names_both_ranges(start: str, end: str) -> None:
    with pytest.raises(DataError) as err:
        load_bars(DataConfig(dataset="btcusdt_1h", start=start, end=end), source="run.toml")
    msg = str(err.value)
    assert msg.startswith("run.toml: data.start..data.end:")
    assert "2018-01-01T00:00:00Z .. 2026-04-30T03:00:00Z" in msg
    assert pd.Timestamp(start).strftime("%Y-%m-%dT%H:%M:%SZ") in msg


def test_unknown_dataset_suggests_the_close_name() -> None:
    with pytest.raises(DataError, match=r"run.toml: data.dataset: .*found 'btcusdt_1hh'; "
                                        r"did you mean 'btcusdt_1h'\?"):
        load_bars(DataConfig(dataset="btcusdt_1hh"), source="run.toml")


def test_external_dataset_is_not_bars() -> None:
    with pytest.raises(DataError, match="found 'btc_funding_8h'"):
        load_bars(DataConfig(dataset="btc_funding_8h"))


def test_timeframe_conflicting_with_the_manifest_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"data.timeframe: expected '1h' .* found '4h'"):
        load_bars(DataConfig(dataset="btcusdt_1h", timeframe="4h"))


def test_manifest_pins_every_stored_file() -> None:
    entries = manifest()
    bars = {f"{s}_{tf}" for s in ("btcusdt", "ethusdt") for tf in ("1d", "1h", "15m")}
    external = {"btc_funding_8h", "btc_etf_flows_1d", "fear_greed_1d",
                "btc_difficulty_blocks_1d"}
    assert set(entries) == bars | external
    assert {e["name"] for e in list_datasets() if e["kind"] == "bars"} == bars
    for name, entry in entries.items():
        blob = (datasets_dir() / entry["file"]).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"], name
        assert blob[4:8] == b"\0\0\0\0", f"{name}: gzip mtime must be 0"
    stored = {p.name for p in datasets_dir().iterdir()}
    assert not {n for n in stored if "cryptoquant" in n or "open_interest" in n
                or "liquidation" in n or "hashrate" in n}
    header = gzip.decompress((datasets_dir() / "btc_difficulty_blocks_1d.csv.gz").read_bytes())
    assert header.split(b"\n", 1)[0] == b"timestamp,difficulty,blocks_mined"
    assert entries["btc_etf_flows_1d"]["publish_lag"] == "1d"
    assert entries["btc_funding_8h"]["publish_lag"] == "0s"
    assert "2^32" in entries["btc_difficulty_blocks_1d"]["derived"]


def test_regeneration_reproduces_the_committed_hashes(tmp_path: Path) -> None:
    shared = shared_data_dir()
    assert shared.is_dir(), f"research data not found at {shared}; set CRASHBT_SHARED"
    names = ("btcusdt_1d", "btc_funding_8h", "btc_etf_flows_1d", "fear_greed_1d",
             "btc_difficulty_blocks_1d")
    build(shared, tmp_path, names)
    for name in names:
        blob = (tmp_path / f"{name}.csv.gz").read_bytes()
        assert hashlib.sha256(blob).hexdigest() == manifest()[name]["sha256"], name


def _copy_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "datasets"
    copy.mkdir()
    for name in ("manifest.toml", "btcusdt_1d.csv.gz"):
        shutil.copy(datasets_dir() / name, copy / name)
    monkeypatch.setenv("CRASHBT_DATASETS", str(copy))
    return copy


def test_tampered_bundled_file_is_refused(tmp_path: Path, monkeypatch) -> None:
    copy = _copy_datasets(tmp_path, monkeypatch)
    bars, _ = load_bars(DataConfig(dataset="btcusdt_1d"))  # the untouched copy loads
    assert len(bars) == 3178
    target = copy / "btcusdt_1d.csv.gz"
    text = gzip.decompress(target.read_bytes()).replace(b"126199.63", b"136199.63")
    target.write_bytes(gzip.compress(text, mtime=0))
    with pytest.raises(DataError, match=r"btcusdt_1d.csv.gz: sha256: expected [0-9a-f]{64} "
                                        r"\(manifest entry btcusdt_1d\), found [0-9a-f]{64}"):
        load_bars(DataConfig(dataset="btcusdt_1d"))


def test_missing_manifest_is_a_data_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CRASHBT_DATASETS", str(tmp_path))
    with pytest.raises(DataError, match=r"manifest.toml: expected the dataset manifest"):
        load_bars(DataConfig(dataset="btcusdt_1d"))


# ---------------------------------------------------------------- user files, every format


def _frame_for_csv(bars: pd.DataFrame, stamps: pd.Series | list) -> pd.DataFrame:
    out = bars.reset_index(drop=True)
    out.insert(0, "timestamp", stamps)
    return out


def _assert_same_bars(loaded: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(loaded[list(OHLCV)], expected[list(OHLCV)], check_freq=False)


def test_user_csv_with_iso_offsets(tmp_path: Path, crash_week) -> None:
    path = tmp_path / "btc_week.csv"
    stamps = crash_week.index.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    _frame_for_csv(crash_week, stamps).to_csv(path, index=False)
    bars, info = load_bars(DataConfig(path=str(path), symbol="BTCUSDT"))
    _assert_same_bars(bars, crash_week)
    assert list(bars.columns) == list(crash_week.columns)  # the extras are kept
    assert (info.timeframe, info.freq, info.rows, info.symbol) == ("1h", "1h", 168, "BTCUSDT")
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("unit", "per_second"), [("s", 1), ("ms", 1000)])
def test_user_csv_with_epoch_numbers(tmp_path: Path, crash_week, unit: str,
                                     per_second: int) -> None:
    path = tmp_path / f"epoch_{unit}.csv"
    stamps = crash_week.index.asi8 // 1_000_000_000 * per_second
    _frame_for_csv(crash_week[list(OHLCV)], stamps).to_csv(path, index=False)
    bars, info = load_bars(DataConfig(path=str(path)))
    _assert_same_bars(bars, crash_week)
    assert info.first == pd.Timestamp("2026-02-01T00:00Z")


def test_binance_headerless_klines(tmp_path: Path, crash_week) -> None:
    path = tmp_path / "BTCUSDT-1h-2026-02.csv"
    open_ms = crash_week.index.asi8 // 1_000_000
    klines = pd.DataFrame({
        "open_time": open_ms, **{c: crash_week[c].to_numpy() for c in OHLCV},
        "close_time": open_ms + 3_599_999, "quote_volume": crash_week["quote_volume"].to_numpy(),
        "trades": crash_week["trades"].astype("int64").to_numpy(),
        "tbb": crash_week["taker_buy_base_volume"].to_numpy(),
        "tbq": crash_week["taker_buy_quote_volume"].to_numpy(), "ignore": 0})
    klines.to_csv(path, index=False, header=False)
    bars, info = load_bars(DataConfig(path=str(path)))  # format = "auto" sniffs it
    _assert_same_bars(bars, crash_week)
    assert bars["trades"].equals(crash_week["trades"].reset_index(drop=True).set_axis(bars.index))
    assert "close_time" not in bars.columns and info.symbol == "BTCUSDT-1H-2026-02"
    explicit, _ = load_bars(DataConfig(path=str(path), format="binance"))
    _assert_same_bars(explicit, crash_week)


def test_parquet(tmp_path: Path, crash_week) -> None:
    path = tmp_path / "week.parquet"
    crash_week.reset_index().to_parquet(path)
    bars, info = load_bars(DataConfig(path=str(path), timeframe="1h"))
    _assert_same_bars(bars, crash_week)
    assert info.rows == 168 and str(bars.index.tz) == "UTC"
    crash_week.reset_index().assign(timestamp=crash_week.index.tz_localize(None)).to_parquet(path)
    with pytest.raises(DataError, match=r"week.parquet: column 'timestamp': expected tz-aware"):
        load_bars(DataConfig(path=str(path)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(946_684_800, 4_102_444_799), min_size=1, max_size=20, unique=True))
def test_epoch_units_detected_by_magnitude(seconds: list[int]) -> None:
    """2000-01-01 .. 2099-12-31 as epoch s, ms and us all give the same UTC instants."""
    expected = pd.DatetimeIndex(pd.to_datetime(seconds, unit="s", utc=True)).as_unit("ns")
    for factor in (1, 1000, 1_000_000):
        got = parse_timestamps("t.csv", pd.Series([str(s * factor) for s in seconds]))
        assert got.equals(expected.rename("timestamp"))


# ---------------------------------------------------------------- bad inputs, one line each

GOOD = [
    "timestamp,open,high,low,close,volume",
    "2024-01-01T00:00:00Z,100,110,95,105,10",
    "2024-01-01T01:00:00Z,105,112,100,108,11",
    "2024-01-01T02:00:00Z,108,115,104,110,12",
    "2024-01-01T03:00:00Z,110,111,101,102,13",
]


def _with(row: int, text: str) -> bytes:
    lines = list(GOOD)
    lines[row] = text
    return ("\n".join(lines) + "\n").encode()


BAD_CASES = {
    "unparsable timestamp": (_with(2, "2024-01-01T0x:00:00Z,105,112,100,108,11"),
                             r"row 2: column 'timestamp': expected an ISO-8601 timestamp"),
    "naive timestamp": (_with(3, "2024-01-01T02:00:00,108,115,104,110,12"),
                        r"row 3: column 'timestamp': expected an explicit UTC offset .* naive"),
    "unsorted": ("\n".join([GOOD[0], GOOD[1], GOOD[3], GOOD[2], GOOD[4]]).encode(),
                 r"row 3 \(2024-01-01T01:00:00Z\): expected ascending timestamps"),
    "duplicate": (_with(3, "2024-01-01T01:00:00Z,108,115,104,110,12"),
                  r"row 3 \(2024-01-01T01:00:00Z\): expected unique timestamps"),
    "empty price": (_with(2, "2024-01-01T01:00:00Z,105,112,100,,11"),
                    r"row 2 \(2024-01-01T01:00:00Z\): expected a finite close price, found "
                    r"close nan"),
    "inf price": (_with(2, "2024-01-01T01:00:00Z,inf,112,100,108,11"),
                  r"row 2 \(.*\): expected a finite open price, found open inf"),
    "zero price": (_with(4, "2024-01-01T03:00:00Z,110,111,0,102,13"),
                   r"row 4 \(.*\): expected a positive low price, found low 0.0"),
    "high below close": (_with(2, "2024-01-01T01:00:00Z,105,107,100,108,11"),
                         r"row 2 \(.*\): expected high >= max\(open, close\), found high 107.0"),
    "low above open": (_with(2, "2024-01-01T01:00:00Z,105,112,106,108,11"),
                       r"row 2 \(.*\): expected low <= min\(open, close\), found low 106.0"),
    "negative volume": (_with(4, "2024-01-01T03:00:00Z,110,111,101,102,-13"),
                        r"row 4 \(.*\): expected a non-negative volume, found volume -13.0"),
    "text in a number": (_with(2, "2024-01-01T01:00:00Z,105,112,100,108,abc"),
                         r"row 2: column 'volume': expected a number, found 'abc'"),
    "truncated last row": (("\n".join(GOOD[:4]) + "\n2024-01-01T03:00:00Z,110,11").encode(),
                           r"row 4: expected 6 comma-separated fields, found 3 "
                           r"\(truncated last row\)"),
    "extra field": (_with(2, "2024-01-01T01:00:00Z,105,112,100,108,11,7"),
                    r"row 2: expected 6 comma-separated fields, found 7$"),
    "not utf-8": (_with(2, "2024-01-01T01:00:00Z,105,112,100,108,11").replace(b"112", b"1\xff2"),
                  r"row 2: expected UTF-8 text, found byte 0xff"),
    "semicolons": ("\n".join(x.replace(",", ";") for x in GOOD).encode(),
                   r"header: expected comma-separated columns .* the delimiter looks like ';'"),
    "missing column": ("\n".join([GOOD[0].replace("close", "closing"), *GOOD[1:]]).encode(),
                       r"column 'close': expected a column named 'close', found columns "
                       r"timestamp, open, high, low, closing, volume; did you mean 'closing'\?"),
    "empty file": (b"", r"expected a header and data rows, found an empty file"),
    "header only": ((GOOD[0] + "\n").encode(), r"expected at least one data row, found only"),
    "mixed epoch units": (b"timestamp,open,high,low,close,volume\n1704067200,1,1,1,1,1\n"
                          b"1704070800,1,1,1,1,1\n1704074400000,1,1,1,1,1\n",
                          r"row 3: expected epoch s like row 1, found 1704074400000 \(epoch ms\)"
                          r"; mixed units"),
    "off-grid bar": (_with(4, "2024-01-01T03:30:00Z,110,111,101,102,13"),
                     r"row 4 \(2024-01-01T03:30:00Z\): expected bars every 1h, found 90m "),
    "bad tick": (_with(3, "2024-01-01T02:00:00Z,108,1000,104,1000,12"),
                 r"row 3 \(.*\): expected a close within 50% of a neighbour, found bad tick "
                 r"close 1000.0 between 108.0 and 102.0; set data.bad_ticks = 'warn'"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_names_file_and_row(tmp_path: Path, case: str) -> None:
    content, pattern = BAD_CASES[case]
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=pattern) as err:
        load_bars(DataConfig(path=str(path)))
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=r"nope.csv: expected an existing data file, found no "):
        load_bars(DataConfig(path=str(path)))


def test_binance_format_with_a_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "klines.csv"
    path.write_bytes(_with(1, GOOD[1]))
    with pytest.raises(DataError, match=r"klines.csv: row 1: expected a headerless Binance kline"
                                        r" row .* found 'timestamp'"):
        load_bars(DataConfig(path=str(path), format="binance"))


def test_bad_tick_warns_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "tick.csv"
    path.write_bytes(BAD_CASES["bad tick"][0])
    with pytest.warns(DataWarning, match=r"tick.csv: row 3 .* bad tick close 1000.0"):
        bars, _ = load_bars(DataConfig(path=str(path), bad_ticks="warn"))
    assert bars["close"].tolist() == [105, 108, 1000, 102]  # kept, not repaired
