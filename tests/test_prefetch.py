"""``backtest.data.bars.prefetch``: a bundled file read early serves the next load only when it
is the same verified file, and fails the load exactly as reading it there would."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import pandas as pd
import pytest

from backtest.config.data import DataConfig
from backtest.data import bars as bars_module
from backtest.data.bars import load_bars, prefetch
from backtest.errors import DataError
from tests.test_data import _copy_datasets

DAILY = DataConfig(dataset="btcusdt_1d", start="2024-01-01", end="2024-06-30")


def test_a_prefetched_load_equals_a_plain_one_and_is_taken_once() -> None:
    plain_bars, plain_info = load_bars(DAILY)
    prefetch(DAILY)
    assert len(bars_module._PREFETCHED) == 1
    bars, info = load_bars(DAILY.model_copy(update={"start": None}))  # any slice of it
    assert not bars_module._PREFETCHED
    pd.testing.assert_frame_equal(bars.loc[plain_bars.index], plain_bars)
    assert (info.sha256, info.path) == (plain_info.sha256, plain_info.path)


def test_a_file_tampered_before_the_prefetch_fails_the_load(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    target = _copy_datasets(tmp_path, monkeypatch) / "btcusdt_1d.csv.gz"
    text = gzip.decompress(target.read_bytes()).replace(b"126199.63", b"136199.63")
    target.write_bytes(gzip.compress(text, mtime=0))
    prefetch(DAILY)
    with pytest.raises(DataError, match=r"btcusdt_1d.csv.gz: sha256: expected [0-9a-f]{64} "
                                        r"\(manifest entry btcusdt_1d\), found [0-9a-f]{64}"):
        load_bars(DAILY)
    assert not bars_module._PREFETCHED


def test_a_file_replaced_after_the_prefetch_is_read_again(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest now pins another file: the early read of the old one serves nothing."""
    copy = _copy_datasets(tmp_path, monkeypatch)
    prefetch(DAILY)
    target, manifest = copy / "btcusdt_1d.csv.gz", copy / "manifest.toml"
    old = bars_module._PREFETCHED["btcusdt_1d"][1].result()[2]
    text = gzip.decompress(target.read_bytes()).replace(b"126199.63", b"136199.63")
    target.write_bytes(gzip.compress(text, mtime=0))
    new = hashlib.sha256(target.read_bytes()).hexdigest()
    manifest.write_text(re.sub(old, new, manifest.read_text()))
    _, info = load_bars(DAILY)
    assert info.sha256 == new
    assert not bars_module._PREFETCHED  # the stale read was dropped, not kept


def test_a_user_file_is_not_prefetched(tmp_path: Path) -> None:
    prefetch(DataConfig(path=str(tmp_path / "mine.csv")))
    assert not bars_module._PREFETCHED
