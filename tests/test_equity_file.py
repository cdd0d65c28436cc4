"""The equity curve file (``[report] equity_format``): equity.csv and equity.parquet hold the
frame exactly and read back as the same frame; the Arrow CSV reader agrees with the checking
reader it stands in front of; a run in either format writes the same report.json but for the
file's name, renders the same page and compares with the other; a tampered equity.parquet is one
line naming the file, exit 2."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser import synthetic_bars_csv

from backtest import api
from backtest.cli import main
from backtest.errors import OutputError
from backtest.report.equity import BATCH, TIME_UNIT, read_equity, write_equity
from backtest.report.files import read_table


def curve(n: int) -> pd.DataFrame:
    """A curve with the awkward values: NaN, inf, -0.0, a subnormal-ish tiny number."""
    rng = np.random.default_rng(11)
    index = pd.date_range("2021-03-04 05:06:00", periods=n, freq="37s", tz="UTC").floor("s")
    frame = pd.DataFrame({"equity": np.cumsum(rng.normal(size=n)) * 1e3 + 1e5,
                          "position": rng.integers(0, 2, n).astype(float),
                          "buy_and_hold": rng.lognormal(10, 3, n),
                          "close": np.round(rng.random(n) * 1e5, 2)}, index=index)
    frame.iloc[3, 1], frame.iloc[4, 2], frame.iloc[5, 3], frame.iloc[6, 3] = \
        np.inf, -0.0, 1e-300, np.nan
    return frame


@pytest.mark.parametrize("name", ["equity.csv", "equity.parquet"])
def test_the_file_reads_back_as_the_frame(name: str, tmp_path: Path) -> None:
    frame = curve(2 * BATCH + 77)  # CSV: three write batches, the last partial
    write_equity(frame, tmp_path / name)
    got = read_equity(tmp_path / name)
    want = frame.set_axis(frame.index.as_unit(TIME_UNIT).rename("timestamp"))
    pd.testing.assert_frame_equal(got, want)
    assert str(got.index.tz) == "UTC"
    np.testing.assert_array_equal(np.signbit(got["buy_and_hold"]), np.signbit(frame["buy_and_hold"]))


def test_parquet_stores_utc_times_and_float64(tmp_path: Path) -> None:
    write_equity(curve(50), tmp_path / "equity.parquet")
    schema = pq.read_schema(tmp_path / "equity.parquet")
    assert schema.names == ["timestamp", "equity", "position", "buy_and_hold", "close"]
    assert schema.field("timestamp").type.tz == "UTC"
    assert all(schema.field(c).type == pa.float64() for c in schema.names[1:])


def test_arrow_csv_reader_agrees_with_the_checking_reader(tmp_path: Path) -> None:
    path = tmp_path / "equity.csv"
    write_equity(curve(5000), path)
    slow = read_table(path, ("timestamp", "equity"), times=("timestamp",),
                      filled=("timestamp", "equity"))
    slow.index = pd.DatetimeIndex(slow.pop("timestamp"), name="timestamp")
    pd.testing.assert_frame_equal(read_equity(path), slow)


@pytest.mark.parametrize(("edit", "expect"), [
    (("100000,", "lots,"), "row 1: column 'equity': expected a number, found 'lots'"),
    ((":00Z,", ":00,"), None),  # a naive time: the checking reader reads it as UTC, as before
    (("2021-03-04T05:06:00Z", "yesterday"),
     "row 1: column 'timestamp': expected an ISO-8601 UTC time, found 'yesterday'"),
])
def test_csv_the_fast_reader_refuses_goes_to_the_checking_reader(
        tmp_path: Path, edit: tuple[str, str], expect: str | None) -> None:
    frame = curve(20)
    frame.iloc[0, 0] = 100000.0
    path = tmp_path / "equity.csv"
    write_equity(frame, path)
    path.write_text(path.read_text().replace(*edit, 1))
    if expect is None:
        assert len(read_equity(path)) == 20
        return
    with pytest.raises(OutputError, match=f"^{path}: .*{expect}"):
        read_equity(path)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same run written with equity.csv and with equity.parquet (separate folders)."""
    tmp = tmp_path_factory.mktemp("formats")
    bars = synthetic_bars_csv(tmp / "bars.csv")
    cfg = api.config_from_dict({
        "data": {"path": str(bars), "symbol": "SYNTHUSDT", "timeframe": "1h"},
        "strategy": {"name": "break_below_74k",
                     "params": {"level": 74400.0, "target": 66000.0, "mode": "short"}},
        "execution": {"init_cash": 100000.0, "fee_rate": 0.001}})
    csv_dir = api.run(cfg).write(tmp / "csv")
    parquet_dir = api.run(api.override(cfg, "report.equity_format=parquet")).write(tmp / "pq")
    return csv_dir, parquet_dir


def test_both_formats_write_the_same_report_but_the_file_name(two_runs: tuple[Path, Path]) -> None:
    csv_dir, parquet_dir = two_runs
    assert sorted(p.name for p in csv_dir.iterdir()) == [
        "equity.csv", "orders.csv", "report.html", "report.json", "trades.csv"]
    assert sorted(p.name for p in parquet_dir.iterdir()) == [
        "equity.parquet", "orders.csv", "report.html", "report.json", "trades.csv"]
    reports = [json.loads((d / "report.json").read_text()) for d in two_runs]
    assert [r["files"].pop("equity") for r in reports] == ["equity.csv", "equity.parquet"]
    for rep in reports:
        rep.pop("timing")
    assert reports[0] == reports[1]  # run id and the recorded config included
    assert "equity_format" not in reports[0]["config"]["report"]
    runs = [api.read_run(d) for d in two_runs]
    pd.testing.assert_frame_equal(runs[0].equity, runs[1].equity)
    for name in ("trades.csv", "orders.csv"):
        assert (csv_dir / name).read_bytes() == (parquet_dir / name).read_bytes()


def test_report_rerenders_either_format_to_the_same_page(two_runs: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    pages = []
    for run in two_runs:
        copy = shutil.copytree(run, tmp_path / run.parent.name)
        assert main(["report", str(copy)]) == 0
        pages.append((copy / "report.html").read_text())
    assert pages[0] == pages[1]
    assert pages[0] == (two_runs[0] / "report.html").read_text()  # as the run wrote it


def test_compare_takes_a_csv_run_and_a_parquet_run(two_runs: tuple[Path, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp.html"
    assert main(["compare", str(two_runs[0]), str(two_runs[1] / "report.json"),
                 "--out", str(out)]) == 0
    rows = [[c.strip().rstrip("*") for c in line.strip("|").split("|")]
            for line in capsys.readouterr().out.splitlines()[2:] if line.startswith("| ")]
    assert len(rows) > 10 and all(row[1] == row[2] for row in rows)  # one run, two formats
    assert 'id="chart-compare-equity"' in out.read_text()


def tamper(table: pa.Table, run: Path, tmp_path: Path) -> Path:
    copy = shutil.copytree(run, tmp_path / "run")
    pq.write_table(table, copy / "equity.parquet")
    return copy


@pytest.mark.parametrize(("change", "expect"), [
    (lambda t: t.drop_columns(["equity"]),
     "column 'equity': expected a column named 'equity', found columns timestamp, position, "
     "buy_and_hold, close"),
    (lambda t: t.set_column(1, "equity", pa.array(map(str, t["equity"].to_pylist()))),
     "column 'equity': expected float64 numbers, found string"),
    (lambda t: t.set_column(0, "timestamp", t["timestamp"].cast(pa.timestamp("us"))),
     "column 'timestamp': expected UTC timestamps, found timestamp[us]"),
    (lambda t: t.set_column(0, "timestamp", t["timestamp"].cast(
        pa.timestamp("us", "Europe/Paris"))),
     "column 'timestamp': expected UTC timestamps, found timestamp[us, tz=Europe/Paris]"),
    (lambda t: t.set_column(1, "equity", pa.array(
        [None, *t["equity"].to_pylist()[1:]], pa.float64())),
     "row 1: column 'equity': expected a value, found null or NaN"),
])
def test_a_tampered_parquet_is_one_line(two_runs: tuple[Path, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str], change,
                                        expect: str) -> None:
    table = pq.read_table(two_runs[1] / "equity.parquet")
    run = tamper(change(table), two_runs[1], tmp_path)
    assert main(["report", str(run)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"crashbt: error: {run / 'equity.parquet'}: {expect}"]


@pytest.mark.parametrize("keep", [0, 100, -8])
def test_a_cut_parquet_is_one_line(two_runs: tuple[Path, Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str], keep: int) -> None:
    run = shutil.copytree(two_runs[1], tmp_path / "run")
    blob = (run / "equity.parquet").read_bytes()
    (run / "equity.parquet").write_bytes(blob[:keep])
    assert main(["compare", str(two_runs[0]), str(run)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"crashbt: error: {run / 'equity.parquet'}: expected a Parquet file, "
                           f"found unreadable bytes (")
