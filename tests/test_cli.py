"""The CLI end to end: a real run on bundled data, and bad inputs that must exit 2 with one line
naming the problem and leave no report directory behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from backtest.cli import main

ROOT = Path(__file__).resolve().parents[1]
BASE_CONFIG = """
[data]
{source}
start = 2025-12-01
end = 2026-03-01

[strategy]
name = "{strategy}"
[strategy.params]
{params}

[execution]
fee_rate = 0.0
"""


@pytest.fixture
def user_csv(tmp_path: Path) -> Path:
    """A user file: real BTCUSDT daily bars from the bundled dataset, written as a plain CSV."""
    bars = pd.read_csv(ROOT / "datasets" / "btcusdt_1d.csv.gz")
    bars = bars[bars["timestamp"] >= "2025-06-01"].iloc[:, :6]
    path = tmp_path / "my_bars.csv"
    bars.to_csv(path, index=False)
    return path


def write_config(tmp_path: Path, source: str = 'dataset = "btcusdt_1d"',
                 strategy: str = "break_below_74k", params: str = "", extra: str = "") -> Path:
    path = tmp_path / "run.toml"
    path.write_text(BASE_CONFIG.format(source=source, strategy=strategy, params=params) + extra)
    return path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_run_writes_a_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, params="confirm_bars = 1")
    code, out, err = run_cli(["run", str(config), "--out", str(tmp_path / "out")], capsys)
    assert code == 0, err
    run_dir = Path(out.splitlines()[0].removeprefix("report: "))
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "equity.csv", "orders.csv", "report.html", "report.json", "trades.csv"]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["dataset"]["start"] == "2025-12-01T00:00:00Z"
    assert report["config"]["strategy"]["name"] == "break_below_74k"
    trades = pd.read_csv(run_dir / "trades.csv")
    # the seed replay on daily bars: the short fills at the 2026-02-05 open, exits at 66,000 there
    first = trades.iloc[0]
    assert (first["entry_time"], first["exit_time"]) == ("2026-02-05T00:00:00Z",) * 2
    assert (first["entry_price"], first["exit_price"]) == (73165.84, 66000.0)
    assert "| total_return_pct |" in out


BadCase = Callable[[Path, Path], list[str]]


def _csv_with(edit: Callable[[pd.DataFrame], pd.DataFrame]) -> BadCase:
    def make(tmp_path: Path, user_csv: Path) -> list[str]:
        frame = edit(pd.read_csv(user_csv))
        frame.to_csv(user_csv, index=False)
        return ["run", str(write_config(tmp_path, source=f'path = "{user_csv}"'))]
    return make


def _config(**kw: str) -> BadCase:
    return lambda tmp_path, user_csv: ["run", str(write_config(tmp_path, **kw))]


def _set(*overrides: str) -> BadCase:
    def make(tmp_path: Path, user_csv: Path) -> list[str]:
        args = ["run", str(write_config(tmp_path))]
        for item in overrides:
            args += ["--set", item]
        return args
    return make


def _unwritable(tmp_path: Path, user_csv: Path) -> list[str]:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output directory should be")
    return ["run", str(write_config(tmp_path)), "--out", str(blocker / "sub")]


BAD_INPUTS: dict[str, tuple[BadCase, str]] = {
    "missing config file": (lambda t, u: ["run", str(t / "nope.toml")], "nope.toml: file not found"),
    "missing data file": (_config(source='path = "/nonexistent/bars.csv"'), "/nonexistent/bars.csv: expected an existing data file"),
    "unknown dataset": (_config(source='dataset = "btcusdt_1hh"'), "did you mean 'btcusdt_1h'"),
    "missing column": (_csv_with(lambda f: f.drop(columns=["close"])), "my_bars.csv: column 'close': expected a column named 'close'"),
    "unsorted timestamps": (_csv_with(lambda f: f.iloc[[1, 0, *range(2, len(f))]]), "row 2 (2025-06-01T00:00:00Z): expected ascending timestamps"),
    "duplicate timestamps": (_csv_with(lambda f: pd.concat([f.iloc[:5], f.iloc[4:]])), "row 6 (2025-06-05T00:00:00Z): expected unique timestamps"),
    "NaN price": (_csv_with(lambda f: f.assign(close=f["close"].where(f.index != 7))), "row 8 (2025-06-08T00:00:00Z): expected a finite close price, found close nan"),
    "negative price": (_csv_with(lambda f: f.assign(open=f["open"].where(f.index != 9, -1.0))), "row 10 (2025-06-10T00:00:00Z): expected a positive open price, found open -1.0"),
    "high below low": (_csv_with(lambda f: f.assign(high=f["high"].where(f.index != 11, 1.0))), "row 12 (2025-06-12T00:00:00Z): expected high >= max(open, close), found high 1.0"),
    "unknown config key": (_set("execution.fee_rat=0.1"), "execution.fee_rat: unknown key; did you mean 'fee_rate'"),
    "wrong value type": (_set('execution.init_cash="lots"'), "execution.init_cash: expected a valid number"),
    "unknown strategy": (_config(strategy="break_below_47k"), "did you mean 'break_below_74k'"),
    "parameter impossible": (_config(params="confirm_bars = 0"), "strategy.params.confirm_bars: expected a number > 0, found 0"),
    "parameter of the wrong type": (_config(params='confirm_bars = "two"'), "strategy.params.confirm_bars: expected an integer, found 'two'"),
    "end before start": (_set("data.end=2025-01-01"), "expected end after start"),
    "empty date range": (_set("data.start=2030-01-01", "data.end=2030-02-01"), "expected bars between 2030-01-01 00:00 and 2030-02-01 00:00, found data from 2017-08-17 00:00 to 2026-04-29 00:00"),
    "unwritable output directory": (_unwritable, "expected a writable output directory"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(case: str, tmp_path: Path, user_csv: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    make, expected = BAD_INPUTS[case]
    args = make(tmp_path, user_csv)
    out_dir = tmp_path / "out"
    if "--out" not in args:
        args += ["--out", str(out_dir)]
    code, out, err = run_cli(args, capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("crashbt: error: ")
    assert expected in lines[0], lines[0]
    assert "Traceback" not in err
    assert not out_dir.exists() or not any(out_dir.iterdir()), "a report directory was left behind"


def test_console_script_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    """The installed entry point, in a fresh process: 2 for a user error, traceback only with --debug."""
    exe = Path(sys.executable).with_name("crashbt")
    config = write_config(tmp_path, params="confirm_bars = 0")
    plain = subprocess.run([str(exe), "run", str(config)], capture_output=True, text=True,
                           cwd=tmp_path, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert plain.returncode == 2
    assert "Traceback" not in plain.stderr and len(plain.stderr.strip().splitlines()) == 1
    debug = subprocess.run([str(exe), "--debug", "run", str(config)], capture_output=True,
                           text=True, cwd=tmp_path)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_listing_commands(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_cli(["strategies"], capsys)
    assert code == 0 and "break_below_74k" in out and "int 1..12" in out
    code, out, _ = run_cli(["data", "list"], capsys)
    assert code == 0 and "btcusdt_1h" in out and "ethusdt_1d" in out
    code, out, _ = run_cli(["show-config", str(write_config(tmp_path)), "--set",
                            "execution.fee_rate=0.002"], capsys)
    assert code == 0 and json.loads(out)["execution"]["fee_rate"] == 0.002


def dead_pid() -> int:
    """The pid of a process that has exited (a writer killed mid-write)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_leftovers_of_killed_writers_are_cleaned_by_the_next_run_of_any_id(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Temp files and directories of dead writers go; a set-aside previous report whose new
    copy never arrived is put back; anything of a live writer is left alone."""
    out = tmp_path / "out"
    study, run_dir, page_dir = out / "study", out / "a-run", out / "another-run"
    for folder in (study, run_dir, page_dir):
        folder.mkdir(parents=True)
    (page_dir / "report.json").write_text("{}")
    dead, alive = dead_pid(), os.getpid()
    stale = [study / f".optimization.json.tmp-{dead}-k2j4", run_dir / f".report.html.tmp-{dead}-",
             out / f".x-1.tmp-{dead}-abc", out / f".compare-x.html.tmp-{dead}-q"]
    for path in stale:
        path.write_text("half-written")
    (out / f".x-2.tmp-{dead}-d").mkdir()
    aside = out / f".another-run.old-{dead}-"
    page_dir.rename(aside)  # killed between "old aside" and "new in": no another-run left
    live = study / f".optimization.json.tmp-{alive}-zz"
    live.write_text("being written right now")
    config = write_config(tmp_path, params="confirm_bars = 1")
    code, _, err = run_cli(["run", str(config), "--out", str(out)], capsys)
    assert code == 0, err
    assert not any(p.exists() for p in stale) and not (out / f".x-2.tmp-{dead}-d").exists()
    assert not aside.exists() and (page_dir / "report.json").read_text() == "{}"
    assert live.exists()


def test_a_failed_replacement_keeps_the_previous_report(tmp_path: Path) -> None:
    from backtest.errors import OutputError
    from backtest.report.files import write_dir_atomically

    final = tmp_path / "out" / "run"
    write_dir_atomically(final, lambda tmp: (tmp / "report.json").write_text("first"))

    def fill_and_fail(tmp: Path) -> None:
        (tmp / "report.json").write_text("second")
        raise OSError(28, "No space left on device", str(tmp / "equity.csv"))

    with pytest.raises(OutputError, match=r"equity\.csv: expected a writable output location, "
                                          "found no space left on device"):
        write_dir_atomically(final, fill_and_fail)
    assert (final / "report.json").read_text() == "first"
    assert sorted(p.name for p in final.parent.iterdir()) == ["run"]


def test_reads_are_capped_and_regular_files_only(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A sparse 5 GiB data file is refused from its size alone (nothing is read)."""
    bars = tmp_path / "huge.csv"
    with bars.open("wb") as handle:
        handle.truncate(5 << 30)
    config = write_config(tmp_path, source=f'path = "{bars}"')
    code, _, err = run_cli(["run", str(config), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert "huge.csv: expected a data file of at most 4 GiB, found 5 GiB" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_output_directory_exits_2(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        code, _, err = run_cli(["run", str(write_config(tmp_path)), "--out", str(out)], capsys)
    finally:
        out.chmod(0o700)
    assert code == 2 and "out: expected a writable output directory, found permission denied" \
        in err


def test_bool_and_empty_text_are_refused_where_they_would_be_coerced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    for override, expected in (("execution.leverage=true", "execution.leverage: expected a "
                                "number, found True"),
                               ('strategy.label=""', "strategy.label: expected a non-empty text"),
                               ("report.html=1", "report.html: expected true or false, found 1")):
        code, _, err = run_cli(["show-config", str(config), "--set", override], capsys)
        assert code == 2 and expected in err, err
