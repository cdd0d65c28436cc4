"""The fast paths for big data (issue 17.4) against the slow ones they replaced or an
independent re-implementation: the Parquet column reader against pandas' reader (same frame,
same one-line errors), the CSV parse from bytes against pandas on the decoded text, equity.csv
against the frame it was written from, chart down-sampling against a group-by, candle and month
buckets against pandas' resample, window slices against masks in segment metrics; and the
``--help`` path that must import neither pandas nor numba.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from backtest.config.common import iso
from backtest.config.data import DataConfig
from backtest.data import regimes
from backtest.data.bars import EXTRAS, load_bars
from backtest.data.files import _parquet_by_pandas, read_csv_table, read_parquet_table
from backtest.errors import DataError
from backtest.metrics import performance as metrics
from backtest.pipeline import regime_spans
from backtest.report import charts
from backtest.report.equity import BATCH as EQUITY_BATCH
from backtest.report.equity import _float_text, write_equity_csv
from backtest.report.pages.run import drawdown_pct, drawdown_pct_at, monthly_returns

REQUIRED = ("timestamp", "open", "high", "low", "close", "volume")


@pytest.fixture(scope="module")
def hourly() -> pd.DataFrame:
    return load_bars(DataConfig(dataset="btcusdt_1h", start="2024-01-01", end="2024-03-01"))[0]


def parquet_bytes(frame: pd.DataFrame, **kw: object) -> bytes:
    sink = io.BytesIO()
    frame.to_parquet(sink, **kw)
    return sink.getvalue()


def both_readers(raw: bytes) -> tuple[pd.DataFrame | str, pd.DataFrame | str]:
    """The column reader's and pandas' frame of ``raw``, or each one's error line."""
    def outcome(read) -> pd.DataFrame | str:
        try:
            return read()
        except DataError as exc:
            return str(exc)

    return (outcome(lambda: read_parquet_table("f.parquet", raw, REQUIRED, EXTRAS)),
            outcome(lambda: _parquet_by_pandas("f.parquet", raw, REQUIRED, EXTRAS, (), None)))


def variants(bars: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Parquet files as users have them: index or column timestamps, other zones, epoch
    numbers, integer and float32 prices, extra and missing-value columns."""
    plain = bars.reset_index()
    with_nulls = plain.assign(trades=pd.array([1, None] * (len(plain) // 2)
                                              + [3] * (len(plain) % 2), dtype="Int64"))
    return {
        "index": bars,
        "column": plain,
        "column_in_the_middle": plain[["open", "timestamp", *bars.columns[1:]]],
        "tokyo": bars.tz_convert("Asia/Tokyo"),
        "epoch_ms": plain.assign(timestamp=plain["timestamp"].astype("int64") // 10**6),
        "milliseconds": plain.assign(timestamp=plain["timestamp"].astype("datetime64[ms, UTC]")),
        "integer_prices": plain.assign(open=plain["open"].round().astype("int64")),
        "float32_volume": plain.assign(volume=plain["volume"].astype("float32")),
        "nullable_integers": with_nulls,
        "range_index_only": plain.set_index(pd.RangeIndex(len(plain))),
        "unnamed_index": bars.rename_axis(None),
        "text_timestamps": plain.assign(timestamp=plain["timestamp"].map(iso)),
        "naive": plain.assign(timestamp=plain["timestamp"].dt.tz_localize(None)),
    }


VARIANTS = ("index", "column", "column_in_the_middle", "tokyo", "epoch_ms", "milliseconds",
            "integer_prices", "float32_volume", "nullable_integers", "range_index_only",
            "unnamed_index", "text_timestamps", "naive")


def test_the_variants_are_all_tested(hourly: pd.DataFrame) -> None:
    assert tuple(variants(hourly)) == VARIANTS


@pytest.mark.parametrize("name", VARIANTS)
def test_parquet_column_reader_returns_pandas_frame(hourly: pd.DataFrame, name: str) -> None:
    fast, slow = both_readers(parquet_bytes(variants(hourly)[name]))
    if isinstance(slow, str):  # no timestamp column: the same line from both
        assert name in ("range_index_only", "unnamed_index") and fast == slow
    else:
        pd.testing.assert_frame_equal(fast, slow)


def test_parquet_column_reader_keeps_one_float_block_and_the_bars(hourly: pd.DataFrame,
                                                                  tmp_path: Path) -> None:
    fast, slow = both_readers(parquet_bytes(hourly, row_group_size=100))  # many chunks
    assert isinstance(fast, pd.DataFrame) and fast.drop(columns="timestamp")._mgr.nblocks == 1
    pd.testing.assert_frame_equal(fast, slow)
    path = tmp_path / "btc_1h.parquet"
    hourly.to_parquet(path, row_group_size=100)
    bars, _ = load_bars(DataConfig(path=str(path)))
    pd.testing.assert_frame_equal(bars, hourly, check_freq=False)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda f: f.assign(close=f["close"].astype(str)), r"expected numeric columns close, found text"),
    (lambda f: f.drop(columns="volume"), r"column 'volume': expected a column named 'volume'"),
    (lambda f: f.iloc[:0], r"expected at least one data row, found none"),
    (lambda f: f.assign(timestamp=f["timestamp"].dt.tz_localize(None)),
     r"column 'timestamp': expected tz-aware UTC timestamps, found naive datetimes"),
])
def test_bad_parquet_files_fail_with_the_same_line(hourly: pd.DataFrame, tmp_path: Path,
                                                   mutate, message: str) -> None:
    raw = parquet_bytes(mutate(hourly.reset_index()))
    path = tmp_path / "bad.parquet"
    path.write_bytes(raw)
    errors = []
    for read in (lambda: read_parquet_table(str(path), raw, REQUIRED, EXTRAS),
                 lambda: _parquet_by_pandas(str(path), raw, REQUIRED, EXTRAS, (), None),
                 lambda: load_bars(DataConfig(path=str(path)))):
        try:
            read()
        except DataError as exc:
            errors.append(str(exc))
    assert errors, "every reader accepted the file"
    assert all(e == errors[-1] for e in errors)
    assert len(errors[-1].splitlines()) == 1 and re.search(message, errors[-1])


def test_unreadable_parquet_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "junk.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"junk.parquet: expected a Parquet file, found"):
        load_bars(DataConfig(path=str(path)))


@pytest.mark.parametrize("dataset", ["btcusdt_1h", "ethusdt_15m", "btcusdt_1d"])
def test_bundled_csv_parsed_from_bytes_equals_pandas_on_the_text(dataset: str) -> None:
    from backtest.data.files import dataset_entry, read_dataset_bytes

    path, raw, _ = read_dataset_bytes(dataset, dataset_entry(dataset, "test"))
    frame = read_csv_table(str(path), raw, REQUIRED, EXTRAS)
    text = pd.read_csv(io.StringIO(raw.decode("utf-8")), dtype=str)
    assert list(frame.columns) == list(text.columns)
    assert frame["timestamp"].tolist() == text["timestamp"].tolist()
    for column in frame.columns.drop("timestamp"):  # Python's float() rounds correctly
        assert frame[column].tolist() == [float(v) for v in text[column]], column


def test_csv_with_bom_and_crlf_reads_like_plain(hourly: pd.DataFrame) -> None:
    text = hourly.reset_index().assign(timestamp=lambda f: f["timestamp"].map(iso)).to_csv(
        index=False, float_format="%.10g")
    plain = read_csv_table("p.csv", text.encode(), REQUIRED, EXTRAS)
    windows = read_csv_table("w.csv", b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode(),
                             REQUIRED, EXTRAS)
    pd.testing.assert_frame_equal(plain, windows)
    broken = text.replace("\n", "\n,", 1).encode()  # row 1 gets an extra field
    with pytest.raises(DataError, match=r"p.csv: row 1: expected 10 comma-separated fields, found 11$"):
        read_csv_table("p.csv", broken, REQUIRED, EXTRAS)


def test_equity_csv_holds_the_frame_exactly(tmp_path: Path) -> None:
    n = 2 * EQUITY_BATCH + 123  # three batches, the last partial
    rng = np.random.default_rng(5)
    index = pd.date_range("2021-03-04 05:06:00", periods=n, freq="37s", tz="UTC",
                          name="timestamp").floor("s")
    frame = pd.DataFrame({"equity": np.cumsum(rng.normal(size=n)) * 1e3 + 1e5,
                          "position": rng.integers(0, 2, n).astype(float),
                          "buy_and_hold": rng.lognormal(10, 3, n),
                          "close": np.round(rng.random(n) * 1e5, 2)}, index=index)
    frame.iloc[7, 0], frame.iloc[8, 1], frame.iloc[9, 2], frame.iloc[10, 3] = \
        np.nan, np.inf, -0.0, 1e-300
    path = tmp_path / "equity.csv"
    write_equity_csv(frame, path)
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["timestamp", *frame.columns]
    assert len(rows) == n + 1
    assert [r[0] for r in rows[1:]] == [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in index]
    for j, column in enumerate(frame.columns, start=1):
        want = frame[column].to_numpy()
        got = np.array([float(r[j]) if r[j] else np.nan for r in rows[1:]])
        np.testing.assert_array_equal(got, want, err_msg=column)  # shortest round trip
        assert all(r[j] != "" for r, v in zip(rows[1:], want, strict=True) if not np.isnan(v))


def reference_downsample(n: int, columns: list[np.ndarray], max_points: int) -> np.ndarray:
    """The group-by down-sampling the chart code replaced: per bucket the first row and each
    column's first minimum and maximum, halving the buckets until the rows fit."""
    if n <= max_points:
        return np.arange(n)
    filled = [pd.Series(np.nan_to_num(c, nan=np.nanmean(c))) for c in columns]
    buckets = max(1, max_points // 3)
    while True:
        labels = np.arange(n) * buckets // n
        keep = [np.unique(labels, return_index=True)[1], np.array([n - 1])]
        for col in filled:
            grouped = col.groupby(labels)
            keep += [grouped.idxmin().to_numpy(), grouped.idxmax().to_numpy()]
        rows = np.unique(np.concatenate(keep))
        if rows.size <= max_points or buckets == 1:
            return rows
        buckets //= 2


@pytest.mark.parametrize("n", [5, 1200, 1201, 4000, 77_777, 300_001])
@pytest.mark.parametrize("max_points", [1200, 100, 7])
def test_downsampling_equals_a_group_by(n: int, max_points: int) -> None:
    rng = np.random.default_rng(n + max_points)
    walk = np.cumsum(rng.normal(size=n))
    ties = np.round(rng.normal(size=n))  # many equal extremes: the first one is kept
    spiky = rng.normal(size=n)
    spiky[rng.integers(0, n, 3)] = [np.nan, np.inf, -np.inf]
    columns = [walk, ties, spiky]
    with np.errstate(invalid="ignore"):  # the mean of inf and -inf
        np.testing.assert_array_equal(charts.downsample_index(n, columns, max_points),
                                      reference_downsample(n, columns, max_points))


@settings(max_examples=100, deadline=None)
@given(data=st.data(), n=st.integers(1, 300), block_rows=st.integers(1, 50))
def test_extremes_compared_in_blocks_equal_one_comparison(data: st.DataObject, n: int,
                                                          block_rows: int) -> None:
    values = np.asarray(data.draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, -1.5, np.nan]),
                                           min_size=n, max_size=n)))
    assume(np.isfinite(values).any())  # the caller drops a column without a finite value
    inner = data.draw(st.sets(st.integers(1, n - 1), max_size=n - 1)) if n > 1 else set()
    starts = np.asarray(sorted({0} | inner))
    for is_min in (True, False):
        whole = charts._first_extreme(values, starts, is_min, block_rows=n)
        blocks = charts._first_extreme(values, starts, is_min, block_rows=block_rows)
        np.testing.assert_array_equal(blocks[0], whole[0])
        np.testing.assert_array_equal(blocks[1], whole[1])

@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, -0.0, 1.5, 1e-300, 123456.789, 1e22,
                                           np.nan, np.inf, -np.inf]),
                          st.integers(1, 30)), min_size=1, max_size=30))
def test_run_formatted_floats_print_as_every_row_formatted(runs: list[tuple[float, int]]) -> None:
    """equity.csv's text of a column formatted once per run of equal bits is Arrow's text of
    every row (-0.0 next to 0.0, NaN as an empty field, inf)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    values = np.repeat([v for v, _ in runs], [k for _, k in runs])
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none")

    def text(column: pa.Array) -> bytes:
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(pa.table({"x": column}), sink, options)
        return sink.getvalue().to_pybytes()

    assert text(_float_text(values)) == text(pa.array(values, from_pandas=True))

def irregular_series(seed: int, unit: str) -> pd.Series:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4000))
    steps = int(rng.choice([60, 900, 3600, 86400])) * rng.choice([1, 1, 1, 2, 50], size=n)
    seconds = 1_577_836_800 + np.cumsum(steps) - steps[0]
    index = pd.DatetimeIndex(seconds.astype("datetime64[s]"), tz="UTC",
                             name="timestamp").as_unit(unit)
    return pd.Series(np.cumsum(rng.normal(size=n)) + 1e3, index=index, name="close")


@pytest.mark.parametrize("seed", range(12))
def test_candles_and_months_equal_pandas_resample(seed: int) -> None:
    close = irregular_series(seed, ("ns", "us", "s")[seed % 3])
    for period in ("15min", "1h", "4h", "1D", "1W"):
        pd.testing.assert_frame_equal(
            charts.bucket_ohlc(close, period),
            close.resample(period, label="left", closed="left").ohlc().dropna(),
            check_freq=False)
    closes = close.resample("MS").last().dropna()
    pct = 100.0 * (closes / closes.shift(1).fillna(1e3) - 1.0)
    months = pd.DataFrame({"year": pct.index.year, "month": pct.index.month,
                           "pct": pct.to_numpy()}).pivot(index="year", columns="month",
                                                         values="pct")
    pd.testing.assert_frame_equal(monthly_returns(close, 1e3),
                                  months.reindex(columns=range(1, 13)))
    bar = close.index.to_series().diff().median() if len(close) > 1 else pd.Timedelta("1h")
    period, _ = charts.close_candles(close)
    expected = [p for p in charts.CANDLE_PERIODS if pd.Timedelta(p) >= bar]
    assert period in (expected or [charts.CANDLE_PERIODS[-1]])


def test_drawdown_is_the_textbook_formula() -> None:
    values = np.cumsum(np.random.default_rng(3).normal(size=10_000)) + 500.0
    np.testing.assert_array_equal(drawdown_pct(values),
                                  100.0 * (values / np.maximum.accumulate(values) - 1.0))



@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(0.01, 1e6) | st.just(math.nan), min_size=1, max_size=80),
       data=st.data())
def test_drawdown_at_rows_is_the_full_curve_at_those_rows(values: list[float],
                                                          data: st.DataObject) -> None:
    """Bit for bit what the page plotted before (the full drawdown, then the rows), NaN
    included (a NaN peak stays NaN from its row on)."""
    curve = np.asarray(values)
    rows = np.asarray(sorted(data.draw(st.sets(st.integers(0, curve.size - 1), min_size=1))))
    np.testing.assert_array_equal(drawdown_pct_at(curve, rows), drawdown_pct(curve)[rows])
    assert drawdown_pct_at(curve, rows[:0]).size == 0


@pytest.mark.parametrize("seed", range(5))
def test_wide_range_equals_the_filtered_copy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    curves = [rng.lognormal(0, 1.2, 50) * rng.choice([1, -1, np.nan, np.inf], 50,
                                                      p=[.85, .05, .05, .05]) for _ in range(2)]
    kept = np.concatenate([c[np.isfinite(c) & (c > 0)] for c in curves])
    assert charts.wide_range(*curves) == (kept.max() / kept.min() > 5.0)
    assert not charts.wide_range(np.full(3, np.nan), -np.ones(3))

def test_window_slices_give_the_metrics_of_masks() -> None:
    rng = np.random.default_rng(9)
    n = 5000
    index = pd.date_range("2020-01-01", periods=n, freq="1h", tz="UTC")
    equity = pd.Series(np.cumprod(1 + rng.normal(0, 0.01, n)) * 1e4, index=index)
    position = pd.Series(rng.integers(0, 2, n).astype(float), index=index)
    masks, slices = {}, {}
    for name, (a, b) in {"early": (0, 100), "middle": (1234, 3210), "empty": (40, 40),
                         "one": (4999, 5000)}.items():
        mask = np.zeros(n, dtype=bool)
        mask[a:b] = True
        masks[name], slices[name] = mask, slice(a, b)
    assert metrics.by_segment(equity, position, 1e4, "1h", slices) == \
        metrics.by_segment(equity, position, 1e4, "1h", masks)
    assert "empty" not in metrics.by_segment(equity, position, 1e4, "1h", slices)


def test_regime_spans_name_each_run_of_one_code() -> None:
    codes = np.array([0, 0, 1, 1, 1, 2, 0, 3, 3, 4, 5, 5, 0], dtype=np.int8)
    index = pd.date_range("2022-05-01", periods=codes.size, freq="1D", tz="UTC")
    spans = regime_spans(pd.Series(codes, index=index))
    assert [(s["regime"], s["start"], s["end"]) for s in spans] == [
        (regimes.LABELS[c], iso(index[a]), iso(index[b])) for c, a, b in
        [(0, 0, 1), (1, 2, 4), (2, 5, 5), (0, 6, 6), (3, 7, 8), (4, 9, 9), (5, 10, 11),
         (0, 12, 12)]]


def test_loading_ten_thousand_bars_keeps_float64_and_utc(tmp_path: Path) -> None:
    index = pd.date_range("2020-01-01", periods=10_000, freq="1min", tz="UTC",
                          name="timestamp")
    price = 100.0 + np.arange(10_000) % 7
    frame = pd.DataFrame({"open": price, "high": price + 1, "low": price - 1,
                          "close": price, "volume": np.ones(10_000, dtype=np.int64)},
                         index=index)
    path = tmp_path / "minute.parquet"
    frame.to_parquet(path)
    bars, info = load_bars(DataConfig(path=str(path)))
    assert info.timeframe == "1m" and info.rows == 10_000
    assert all(str(t) == "float64" for t in bars.dtypes)
    assert bars.index.equals(index)
    assert math.isclose(bars["volume"].sum(), 10_000)
