"""The bad-input corpus (tests/corpus/cases.toml) through the real CLI entry point.

Every refused case exits 2 with ONE stderr line that names the file and the row or key, prints no
traceback and leaves nothing in the output directory; the few accepted cases (bad ticks with
``data.bad_ticks = "warn"``, zero-volume bars, a UTF-8 BOM) exit 0. docs/bad-inputs.md is
generated from the same table: ``.venv/bin/python tests/test_corpus.py > docs/bad-inputs.md``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from backtest.cli import main
from backtest.config.data import DataConfig
from backtest.data.bars import DataWarning, load_bars

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
DOC = ROOT / "docs" / "bad-inputs.md"
CRASHBT = Path(sys.executable).with_name("crashbt")


@dataclass(frozen=True)
class Case:
    """One row of cases.toml: how to run it and what must come out."""

    id: str
    what: str
    config: str = "base.toml"
    data: str | None = None
    args: list[str] = field(default_factory=list)
    expect: str = ""
    exit: int = 2
    warns: str = ""

    def argv(self, out: Path) -> list[str]:
        """``run configs/<config> [--set data.path=...] <args> [--out out]`` (cwd = corpus)."""
        argv = ["run", f"configs/{self.config}"]
        if self.data is not None:
            argv += ["--set", f"data.path=../data/{self.data}"]
        argv += self.args
        return argv if "--out" in self.args else [*argv, "--out", str(out)]


def load_cases() -> list[Case]:
    return [Case(**row) for row in tomllib.loads((CORPUS / "cases.toml").read_text())["case"]]


CASES = load_cases()
SUBPROCESS_IDS = ("truncated-mid-row", "circular-extends", "parameter-nan", "zero-byte-parquet",
                  "external-ends-before-bars", "strategy-name-code")


def render_doc(cases: list[Case]) -> str:
    """docs/bad-inputs.md: what crashbt checks, one row per corpus case."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "# Bad inputs crashbt checks",
        "",
        "Generated from `tests/corpus/cases.toml` by `tests/test_corpus.py` (a test keeps it in",
        "sync). Each row is run through `crashbt run`; a refused input exits 2 with one line",
        "`crashbt: error: <file>: <row or key>: expected ..., found ...`, no traceback, and no",
        "report directory. Accepted inputs exit 0.",
        "",
        "| case | input | exit | message contains |",
        "|---|---|---|---|",
    ]
    for c in cases:
        shown = c.expect or c.warns or "(runs; report written)"
        if c.warns:
            shown = f"warning: {shown}"
        lines.append(f"| `{c.id}` | {cell(c.what)} | {c.exit} | `{cell(shown)}` |")
    return "\n".join(lines) + "\n"


def test_corpus_is_large_and_ids_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 40
    assert sum(c.exit == 2 for c in CASES) >= 40
    assert all(c.expect for c in CASES if c.exit == 2)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_through_the_cli(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(CORPUS)
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        code = main(case.argv(out))
    _, stderr = capsys.readouterr()
    assert code == case.exit, stderr
    assert "Traceback" not in stderr
    assert not (CORPUS / "pwned").exists()
    if case.exit == 2:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, stderr
        assert lines[0].startswith("crashbt: error: ") and case.expect in lines[0], lines[0]
        assert not out.exists() or not any(out.iterdir()), "something was left behind"
        return
    assert stderr == ""
    (run_dir,) = out.iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["dataset"]["bars"] == 40  # every bar kept: nothing dropped or repaired
    messages = [str(w.message) for w in seen if issubclass(w.category, DataWarning)]
    if case.warns:
        assert any(case.warns in m for m in messages), messages
    else:
        assert messages == []


@pytest.mark.parametrize("case_id", SUBPROCESS_IDS)
def test_case_in_a_fresh_process(case_id: str, tmp_path: Path) -> None:
    """The installed console script: exit code, one line, no traceback, nothing written."""
    (case,) = [c for c in CASES if c.id == case_id]
    out = tmp_path / "out"
    done = subprocess.run([str(CRASHBT), *case.argv(out)], cwd=CORPUS, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and case.expect in lines[0], done.stderr
    assert done.stdout == "" and not out.exists()


def test_zero_volume_bars_are_kept_and_counted() -> None:
    bars, info = load_bars(DataConfig(path=str(CORPUS / "data" / "zero_volume.csv")))
    # zero_volume.csv sets the volume of rows 10 and 11 (2026-01-24, 2026-01-25) to 0
    assert info.zero_volume_bars == 2 and len(bars) == 40
    assert bars.index[bars["volume"] == 0].strftime("%m-%d").tolist() == ["01-24", "01-25"]


def test_doc_is_in_sync_with_the_corpus() -> None:
    assert DOC.read_text() == render_doc(CASES), \
        "regenerate: .venv/bin/python tests/test_corpus.py > docs/bad-inputs.md"


if __name__ == "__main__":
    sys.stdout.write(render_doc(CASES))


def test_readme_lists_every_case() -> None:
    """The README's table of checked inputs is the generated one, row for row."""
    readme = (ROOT / "README.md").read_text()
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    missing = [row for row in rows if row not in readme]
    assert rows and not missing, f"README.md lacks {len(missing)} rows, e.g. {missing[:1]}"
