"""The hostile-input corpus (tests/corpus/cases.toml) through the real CLI entry point.

Every command is covered: ``run``, ``optimize``, ``report``, ``compare``, ``check``, ``data`` and
``show-config``. Every refused case exits 2 with ONE terminal-safe stderr line that names the file
and the row or key, prints no traceback and leaves nothing behind (no report directory, no temp
file); accepted cases exit 0 and a case whose reader closes stdout exits 141. A few cases run in
a fresh process: a file-size limit (``RLIMIT_FSIZE``, a full disk without root) or stdout closed
by its reader (``crashbt run ... | head``). docs/bad-inputs.md is generated from the same table:
``.venv/bin/python tests/test_corpus.py > docs/bad-inputs.md``.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tomllib
import warnings
from collections.abc import Iterator
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
CONFIG_COMMANDS = ("run", "optimize", "check lookahead", "check warmup", "show-config")
OUT_COMMANDS = ("run", "optimize")
FILE_LIMIT = 4096  # bytes a "disk-full" case may write per file
# leftovers of a write: .<name>.tmp-<pid>-<random>, .<name>.old-<pid>-
LEFTOVER = re.compile(r"^\.(.+)\.(tmp|old)-\d+-\w*$")


@dataclass(frozen=True)
class Case:
    """One row of cases.toml: how to run it and what must come out.

    ``args`` (and ``config``, ``env``, edits) may name ``{run}`` (a copy of a finished run
    directory, edited by ``edit`` / ``truncate`` / ``rename`` / ``fifo``), ``{good}`` (an untouched run
    directory), ``{tmp}`` (the case's scratch folder), ``{corpus}`` (this folder, absolute) and
    ``{huge_name}`` (a --set of a 10 MB strategy name).
    """

    id: str
    what: str
    command: str = "run"
    config: str = "base.toml"
    data: str | None = None
    args: list[str] = field(default_factory=list)
    expect: str = ""
    exit: int = 2
    warns: str = ""
    edit: list[dict[str, str]] = field(default_factory=list)  # [{file, find, replace}] in {run}
    truncate: dict[str, object] = field(default_factory=dict)  # {file, keep} in {run}
    rename: dict[str, str] = field(default_factory=dict)  # {file, to} in {run}
    fifo: str = ""            # a path below {tmp} made a FIFO (named pipe)
    env: dict[str, str] = field(default_factory=dict)
    process: str = ""         # "disk-full" or "closed-stdout": run in a fresh process

    def argv(self, tmp: Path, good: Path) -> list[str]:
        """``<command> [configs/<config>] [--set data.path=...] <args> [--out tmp/out]``."""
        argv = self.command.split()
        if self.command in CONFIG_COMMANDS:
            config = self.config if self.config.startswith("{") else f"configs/{self.config}"
            argv.append(self.fill(config, tmp, good))
        if self.data is not None:
            argv += ["--set", f"data.path=../data/{self.data}"]
        argv += [self.fill(arg, tmp, good) for arg in self.args]
        if self.command in OUT_COMMANDS and "--out" not in self.args:
            argv += ["--out", str(tmp / "out")]
        return argv

    @staticmethod
    def fill(text: str, tmp: Path, good: Path) -> str:
        if text == "{huge_name}":
            return "strategy.name=" + "x" * 10_000_000
        return (text.replace("{run}", str(tmp / "run")).replace("{good}", str(good))
                .replace("{tmp}", str(tmp)).replace("{corpus}", str(CORPUS)))

    def prepare(self, tmp: Path, good: Path) -> None:
        """The case's scratch files: the edited run copy and the FIFO."""
        if any("{run}" in arg for arg in self.args):
            shutil.copytree(good, tmp / "run")
        for edit in self.edit:
            target = tmp / "run" / edit["file"]
            text = target.read_text()
            assert edit["find"] in text, f"{self.id}: {edit['find']!r} is not in {target.name}"
            target.write_text(text.replace(edit["find"], self.fill(edit["replace"], tmp, good), 1))
        if self.truncate:
            target = tmp / "run" / str(self.truncate["file"])
            target.write_bytes(target.read_bytes()[:int(str(self.truncate["keep"]))])
        if self.rename:
            (tmp / "run" / self.rename["file"]).rename(tmp / "run" / self.rename["to"])
        if self.fifo:
            path = tmp / self.fifo
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            os.mkfifo(path)


def load_cases() -> list[Case]:
    return [Case(**row) for row in tomllib.loads((CORPUS / "cases.toml").read_text())["case"]]


CASES = load_cases()
IN_PROCESS = [c for c in CASES if not c.process]
IN_A_PROCESS = [c for c in CASES if c.process]
SUBPROCESS_IDS = ("truncated-mid-row", "circular-extends", "parameter-nan", "zero-byte-parquet",
                  "external-ends-before-bars", "strategy-name-code", "report-schema-999",
                  "check-negative-cuts")


def render_doc(cases: list[Case]) -> str:
    """docs/bad-inputs.md: what crashbt checks, one row per corpus case."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "# Bad inputs crashbt checks",
        "",
        "Generated from `tests/corpus/cases.toml` by `tests/test_corpus.py` (a test keeps it in",
        "sync). Each row runs one crashbt command; a refused input exits 2 with one line",
        "`crashbt: error: <file>: <row or key>: expected ..., found ...` (control characters",
        "escaped, secrets masked), no traceback, and nothing left behind: no report directory,",
        "no temp file. Accepted inputs exit 0. A reader that closes stdout early",
        "(`crashbt run ... | head`) ends the command quietly with 141, the status of a process",
        "ended by SIGPIPE: the work is done, the rest of the summary is dropped.",
        "",
        "Every file crashbt reads must be a regular file (never a FIFO, a device or a socket:",
        "nothing waits) within a size cap: 1 MiB for a config, tier table or manifest, 256 MiB",
        "for a report.json, 4 GiB for data files and run CSVs (also once decompressed). Configs",
        "and reports nest at most 32 levels deep; `extends` chains at most 32 files. Messages show",
        "at most 4,000 characters. Storage URLs are masked in every form (`user:secret@`, an `@`",
        "inside the password, `?password=`, `&sslpassword=`) on stdout, stderr and in every file.",
        "",
        "| case | command | input | exit | message contains |",
        "|---|---|---|---|---|",
    ]
    for c in cases:
        shown = c.expect or c.warns or "(runs; report written)"
        if c.warns:
            shown = f"warning: {shown}"
        lines.append(f"| `{c.id}` | {c.command} | {cell(c.what)} | {c.exit} | `{cell(shown)}` |")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of configs/base.toml: what report and compare cases start from."""
    out = tmp_path_factory.mktemp("good")
    cwd = Path.cwd()
    os.chdir(CORPUS)
    try:
        assert main(["run", "configs/base.toml", "--out", str(out)]) == 0
    finally:
        os.chdir(cwd)
    (run_dir,) = out.iterdir()
    return run_dir


def leftovers(folder: Path) -> list[str]:
    """Temp files and set-aside directories anywhere below ``folder``."""
    return [str(p) for p in folder.rglob(".*") if LEFTOVER.match(p.name)]


def check_refusal(case: Case, stderr: str, tmp: Path) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[:2000]
    assert lines[0].startswith("crashbt: error: ") and case.expect in lines[0], lines[0][:2000]
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e]", lines[0]), "unescaped"
    assert len(lines[0]) < 5000
    out = tmp / "out"
    if case.command == "run":
        assert not out.exists() or not any(out.iterdir()), "something was left behind"
    assert leftovers(tmp) == []


def test_corpus_is_large_and_ids_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 100
    assert sum(c.exit == 2 for c in CASES) >= 80
    assert all(c.expect for c in CASES if c.exit == 2)
    commands = {c.command.split()[0] for c in CASES}
    assert {"run", "optimize", "report", "compare", "check", "data"} <= commands


@pytest.fixture
def tampered_inputs_removed(tmp_path: Path) -> Iterator[None]:
    """The edited run copy is input, not output: remove it before the suite-wide strict-JSON
    check of every report.json a test leaves (``report-nan-in-json`` plants a NaN on purpose)."""
    yield
    shutil.rmtree(tmp_path / "run", ignore_errors=True)


@pytest.mark.usefixtures("tampered_inputs_removed")
@pytest.mark.parametrize("case", IN_PROCESS, ids=[c.id for c in IN_PROCESS])
def test_case_through_the_cli(case: Case, good_run: Path, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(CORPUS)
    for key, value in case.env.items():
        monkeypatch.setenv(key, case.fill(value, tmp_path, good_run))
    case.prepare(tmp_path, good_run)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        code = main(case.argv(tmp_path, good_run))
    _, stderr = capsys.readouterr()
    assert code == case.exit, stderr[:2000]
    assert "Traceback" not in stderr
    assert not (CORPUS / "pwned").exists()
    if case.exit == 2:
        check_refusal(case, stderr, tmp_path)
        return
    assert stderr == ""
    assert leftovers(tmp_path) == []
    if case.command != "run":
        return
    (run_dir,) = (tmp_path / "out").iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["dataset"]["bars"] == 40  # every bar kept: nothing dropped or repaired
    assert (run_dir / report["files"]["equity"]).is_file()
    messages = [str(w.message) for w in seen if issubclass(w.category, DataWarning)]
    if case.warns:
        assert any(case.warns in m for m in messages), messages
    else:
        assert messages == []


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


@pytest.mark.usefixtures("tampered_inputs_removed")
@pytest.mark.parametrize("case", IN_A_PROCESS, ids=[c.id for c in IN_A_PROCESS])
def test_case_in_a_hostile_process(case: Case, good_run: Path, tmp_path: Path) -> None:
    """A full disk (every file capped at 4 KiB) or a stdout whose reader is gone."""
    case.prepare(tmp_path, good_run)
    argv = [str(CRASHBT), *case.argv(tmp_path, good_run)]
    if case.process == "disk-full":
        done = subprocess.run(argv, cwd=CORPUS, capture_output=True, text=True, timeout=300,
                              preexec_fn=_limit_file_size)
        assert done.returncode == case.exit, done.stderr
        check_refusal(case, done.stderr, tmp_path)
        return
    assert case.process == "closed-stdout"
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line is printed
    try:
        done = subprocess.run(argv, cwd=CORPUS, stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=300)
    finally:
        os.close(write_end)
    assert done.returncode == case.exit, done.stderr
    assert done.stderr == ""  # quiet: no traceback, no "Exception ignored" on exit
    assert leftovers(tmp_path) == []


@pytest.mark.usefixtures("tampered_inputs_removed")
@pytest.mark.parametrize("case_id", SUBPROCESS_IDS)
def test_case_in_a_fresh_process(case_id: str, good_run: Path, tmp_path: Path) -> None:
    """The installed console script: exit code, one line, no traceback, nothing written."""
    (case,) = [c for c in CASES if c.id == case_id]
    case.prepare(tmp_path, good_run)
    done = subprocess.run([str(CRASHBT), *case.argv(tmp_path, good_run)], cwd=CORPUS,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and case.expect in lines[0], done.stderr
    assert done.stdout == "" and not (tmp_path / "out").exists()


def test_zero_volume_bars_are_kept_and_counted() -> None:
    bars, info = load_bars(DataConfig(path=str(CORPUS / "data" / "zero_volume.csv")))
    # zero_volume.csv sets the volume of rows 10 and 11 (2026-01-24, 2026-01-25) to 0
    assert info.zero_volume_bars == 2 and len(bars) == 40
    assert bars.index[bars["volume"] == 0].strftime("%m-%d").tolist() == ["01-24", "01-25"]


def test_doc_is_in_sync_with_the_corpus() -> None:
    assert DOC.read_text() == render_doc(CASES), \
        "regenerate: .venv/bin/python tests/test_corpus.py > docs/bad-inputs.md"


def test_readme_lists_every_case() -> None:
    """The README's table of checked inputs is the generated one, row for row."""
    readme = (ROOT / "README.md").read_text()
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    missing = [row for row in rows if row not in readme]
    assert rows and not missing, f"README.md lacks {len(missing)} rows, e.g. {missing[:1]}"


if __name__ == "__main__":
    sys.stdout.write(render_doc(CASES))
