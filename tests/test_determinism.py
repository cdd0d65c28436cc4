"""Determinism: the same config gives a byte-identical report.json in two fresh processes (apart
from the one ``timing`` field), and run_id moves whenever config, data, strategy source or
package versions move."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import strategies
from backtest import pipeline, plugins
from backtest.config.loader import load_config

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
CRASHBT = Path(sys.executable).with_name("crashbt")
# to_json writes sorted keys with indent 2, so "timing" is one block of top-level lines
TIMING = re.compile(rb'\n  "timing": \{\n(?:    .*\n)*?  \},?')


def test_two_fresh_processes_write_identical_reports(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('[data]\ndataset = "btcusdt_1d"\nstart = 2025-06-01\n'
                      '[strategy]\nname = "break_below_74k"\n')
    dirs = []
    for n in (1, 2):
        done = subprocess.run([str(CRASHBT), "run", str(config), "--out", str(tmp_path / f"o{n}")],
                              capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr
        (run_dir,) = (tmp_path / f"o{n}").iterdir()
        dirs.append(run_dir)
    assert dirs[0].name == dirs[1].name  # same run_id
    first, second = ((d / "report.json").read_bytes() for d in dirs)
    assert TIMING.search(first) and TIMING.search(second)  # the one field allowed to vary
    assert TIMING.sub(b"", first) == TIMING.sub(b"", second)
    for name in ("trades.csv", "equity.csv"):
        assert (dirs[0] / name).read_bytes() == (dirs[1] / name).read_bytes()


@pytest.fixture
def corpus_run(tmp_path: Path) -> Path:
    """A config on a private copy of the corpus bars (40 real daily bars), fast to execute."""
    shutil.copy(CORPUS / "data" / "good.csv", tmp_path / "bars.csv")
    config = tmp_path / "run.toml"
    config.write_text('[data]\npath = "bars.csv"\n[strategy]\nname = "break_below_74k"\n')
    return config


def run_id(config: Path, spec: object | None = None) -> str:
    cfg = load_config(config)
    spec = spec or strategies.get(cfg.strategy.name)
    return pipeline.execute(cfg, spec, str(config)).report["run_id"]


def test_run_id_follows_config_data_source_and_versions(corpus_run: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    base = run_id(corpus_run)
    assert run_id(corpus_run) == base  # stable in one process too

    text = corpus_run.read_text()
    corpus_run.write_text(text + "[execution]\nfee_rate = 0.002\n")
    changed_config = run_id(corpus_run)
    corpus_run.write_text(text)

    bars = tmp_path / "bars.csv"
    original = bars.read_bytes()
    bars.write_bytes(original.replace(b",21725.81369\n", b",21725.81370\n", 1))  # one volume
    assert bars.read_bytes() != original
    changed_data = run_id(corpus_run)
    bars.write_bytes(original)

    edited = tmp_path / "edited_strategy.py"
    edited.write_text((ROOT / "strategies" / "break_below_74k.py").read_text() + "# edited\n")
    spec = plugins.resolve("edited_strategy.py:SPEC", str(corpus_run), allow_external=True)
    changed_source = run_id(corpus_run, spec)

    real_versions = pipeline.package_versions()
    monkeypatch.setattr(pipeline, "package_versions",
                        lambda: {**real_versions, "numpy": real_versions["numpy"] + ".post1"})
    changed_versions = run_id(corpus_run)
    monkeypatch.undo()

    ids = [base, changed_config, changed_data, changed_source, changed_versions]
    assert len(set(ids)) == 5, ids
    assert all(i.startswith("break_below_74k-") for i in ids)
    assert run_id(corpus_run) == base  # everything restored -> the same id again
