"""Security: configs are data (nothing evaluated, imported or unpickled), external strategies only
behind --allow-external-strategies, output confined to the output directory, credentials masked."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from backtest.cli import main
from backtest.redact import mask_secrets, terminal_safe

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
URL = "postgresql://u:secret@host/db"


def write_config(folder: Path, strategy: str = "break_below_74k", extra: str = "") -> Path:
    """A run on a copy of the corpus bars (40 real BTCUSDT days) plus the flows_reader plugin."""
    shutil.copy(CORPUS / "data" / "good.csv", folder / "bars.csv")
    shutil.copy(CORPUS / "external_strategies" / "flows_reader.py", folder / "flows_reader.py")
    config = folder / "run.toml"
    config.write_text(f'{extra}\n[data]\npath = "bars.csv"\n[strategy]\nname = "{strategy}"\n')
    return config


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("flag", [[], ["--allow-external-strategies"]])
@pytest.mark.parametrize("where", ["name", "param", "label"])
def test_code_in_a_config_is_never_run(where: str, flag: list[str], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code_text = f"__import__('os').system('touch {tmp_path}/pwned')"
    strategy = code_text if where == "name" else "break_below_74k"
    config = write_config(tmp_path, strategy)
    if where == "param":
        config.write_text(config.read_text() + f'[strategy.params]\nmode = "{code_text}"\n')
    if where == "label":
        config.write_text(config.read_text().replace("[strategy]\n",
                                                     f'[strategy]\nlabel = "{code_text}"\n'))
    code, _, err = cli(["run", str(config), "--out", str(tmp_path / "out"), *flag], capsys)
    assert not (tmp_path / "pwned").exists()
    if where == "label":  # a label is only text: the run succeeds, the text is just a name
        assert code == 0
        return
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(("name", "message"), [
    ("x:__import__('os')", "expected 'package.module:SPEC' or 'path/file.py:SPEC'"),
    ("os:system", "expected os:system to be a StrategySpec, found builtin_function_or_method"),
    ("no_such_module_xyz:SPEC", "expected an importable module, found no module"),
    ("missing.py:SPEC", "expected an existing strategy file"),
])
def test_external_references_are_checked(name: str, message: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, name)
    code, _, err = cli(["run", str(config), "--allow-external-strategies"], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_external_strategy_needs_the_flag(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, "flows_reader.py:SPEC")
    out_dir = tmp_path / "out"
    code, _, err = cli(["run", str(config), "--out", str(out_dir)], capsys)
    assert code == 2 and "pass --allow-external-strategies to import it" in err
    assert not out_dir.exists()
    code, _, err = cli(["run", str(config), "--out", str(out_dir),
                          "--allow-external-strategies"], capsys)
    assert code == 0, err
    (run_dir,) = out_dir.iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["strategy"]["name"] == "flows_reader"
    assert report["strategy"]["external"]["etf_flows"]["name"] == "btc_etf_flows_1d"


def test_no_eval_exec_pickle_and_imports_only_in_plugins() -> None:
    """Source scan: the only dynamic imports are backtest/plugins.py (strategies) and
    backtest/native.py (crashbt's own kernel modules, a fixed tuple, and the extension built
    from them); nothing evaluates text."""
    banned_calls = {"eval", "exec", "compile", "__import__"}
    banned_modules = {"pickle", "marshal", "shelve", "dill", "cloudpickle"}
    loaders = {"import_module", "spec_from_file_location", "exec_module"}
    for path in [*ROOT.glob("backtest/*.py"), *ROOT.glob("strategies/*.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in banned_calls, f"{path.name} calls {node.func.id}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) \
                    else [node.module or ""]
                for name in names:
                    assert name.split(".")[0] not in banned_modules, f"{path.name} imports {name}"
            if isinstance(node, ast.Attribute) and node.attr in loaders:
                assert path.name in ("plugins.py", "native.py"), f"{path.name} uses {node.attr}"


@pytest.mark.parametrize("key", ["name", "label"])
def test_path_escape_through_a_run_name_stays_inside(key: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    config = write_config(work)
    text = config.read_text()
    if key == "name":
        config.write_text('name = "../../etc/x"\n' + text)
    else:
        config.write_text(text.replace("[strategy]\n", '[strategy]\nlabel = "../../etc/x"\n'))
    out_dir = work / "out"
    code, _, err = cli(["run", str(config), "--out", str(out_dir)], capsys)
    assert code == 0, err
    (run_dir,) = out_dir.iterdir()
    assert run_dir.parent == out_dir and run_dir.name.startswith("etc-x-")
    assert not (tmp_path / "etc").exists() and not (tmp_path / "a" / "etc").exists()


def test_mask_secrets() -> None:
    assert mask_secrets(f"connect {URL} now") == "connect postgresql://u:***@host/db now"
    assert mask_secrets("postgresql+psycopg://u:p%40ss@h:5432/db?sslmode=require") == \
        "postgresql+psycopg://u:***@h:5432/db?sslmode=require"
    assert mask_secrets("postgresql:/u:secret@host/db") == "postgresql:/u:***@host/db"  # Path()
    assert mask_secrets("dbname=x password=hunter2 host=h") == "dbname=x password=*** host=h"
    assert mask_secrets("https://h/x?token=abc&x=1") == "https://h/x?token=***&x=1"
    # an '@' inside the password: everything up to the host's '@' is the password
    assert mask_secrets("postgresql://u:p@ss@host/db?email=a@b") == \
        "postgresql://u:***@host/db?email=a@b"
    assert mask_secrets("postgresql://u@h/db?sslmode=require&sslpassword=k3y&password=pw") == \
        "postgresql://u@h/db?sslmode=require&sslpassword=***&password=***"
    assert mask_secrets('{"client_secret": "abc", "fee": 1}') == '{"client_secret": "***", "fee": 1}'
    # a driver repeating the password in its own words is masked when the URL is known
    url = "postgresql://u:s3cr%40t@h/db"
    assert mask_secrets("auth failed for 's3cr@t' and s3cr%40t", url) == \
        "auth failed for '***' and ***"
    for clean in ("sqlite:///x.db", "mysql://u@host/db", "12:30 @ home", "fee_rate: 0.001"):
        assert mask_secrets(clean) == clean


def test_terminal_safe_escapes_control_characters_and_caps_length() -> None:
    assert terminal_safe("a\nb\tc\x1b[2J\u202ed") == "a\\nb\\tc\\x1b[2J\\u202ed"
    assert terminal_safe("x" * 50, limit=10) == "x" * 10 + "... (40 more characters)"
    assert terminal_safe("crash \u00e9t\u00e9 \U0001f4c9") == "crash \u00e9t\u00e9 \U0001f4c9"


def test_masking_hostile_text_is_linear() -> None:
    """Long runs that look like the start of a URL or a secret key must not make the masker
    quadratic (a 10 MB strategy name lands in an error message)."""
    for text in ("a" * 2_000_000, "password" * 250_000, "x://u:" + "@" * 1_000_000):
        assert len(mask_secrets(text)) <= len(text)


def _pg(userinfo: str, query: str = "") -> str | None:
    """The test server's URL with other credentials, or None without CRASHBT_PG_URL."""
    url = os.environ.get("CRASHBT_PG_URL")
    if not url:
        return None
    host = url.rsplit("@", 1)[1]
    return f"postgresql+psycopg://{userinfo}@{host}{query}"


# (form, storage URL built in tmp_path, the secret, exit code): every way a secret rides in a URL
STORAGE_FORMS = [
    ("sqlite-query-password", lambda tmp: f"sqlite:///{tmp}/s.db?password=Hunter2-Sqlite",
     "Hunter2-Sqlite", 0),
    ("query-sslpassword", lambda tmp: (os.environ.get("CRASHBT_PG_URL") or "") +
     "?sslpassword=Hunter2-Ssl", "Hunter2-Ssl", 0),
    ("userinfo", lambda tmp: _pg("crashbt:Hunter2-Userinfo"), "Hunter2-Userinfo", 2),
    ("at-in-password", lambda tmp: _pg("crashbt:Hunter2@At-Sign"), "Hunter2@At-Sign", 2),
    ("percent-encoded", lambda tmp: _pg("crashbt:Hunter2%40Encoded"), "Hunter2@Encoded", 2),
    ("query-password", lambda tmp: _pg("crashbt", "/crashbt?password=Hunter2-Query"),
     "Hunter2-Query", 2),
]


@pytest.mark.postgres
@pytest.mark.parametrize(("form", "make_url", "secret", "exit_code"), STORAGE_FORMS,
                         ids=[f[0] for f in STORAGE_FORMS])
def test_a_storage_secret_appears_in_no_output(form: str, make_url: Callable[[Path], str | None],
                                               secret: str, exit_code: int,
                                               tmp_path: Path) -> None:
    """``crashbt optimize --storage URL``: stdout, stderr (logs included) and every file
    written hold no trace of the secret, percent-encoded or not."""
    url = make_url(tmp_path)
    if not url or url.startswith("?"):
        pytest.fail("CRASHBT_PG_URL is not set: start PostgreSQL with `bash scripts/test-services`")
    config = CORPUS / "configs" / "optimize_small.toml"  # two trials on the corpus bars
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "backtest", "optimize", str(config), "--storage", url,
         "--study", f"secret-{form}-{uuid.uuid4().hex[:8]}", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == exit_code, done.stderr
    written = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    if exit_code == 0:
        assert {"optimization.json", "optimization.html", "report.json"} <= \
            {p.name for p in written}
    texts = {"stdout": done.stdout, "stderr": done.stderr,
             **{str(p): p.read_bytes().decode("utf-8", "replace") for p in written}}
    for where, text in texts.items():
        for form_of_secret in {secret, quote(secret, safe=""), *secret.split("@")}:
            assert form_of_secret not in text, f"{form_of_secret} in {where}"


@pytest.mark.parametrize("section", ["data", "external"])
def test_a_url_used_as_a_file_path_never_prints_the_password(section: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str],
                                                             ) -> None:
    if section == "data":
        config = write_config(tmp_path)
        config.write_text(config.read_text().replace('path = "bars.csv"', f'path = "{URL}"'))
        args: list[str] = []
    else:
        config = write_config(tmp_path, "flows_reader.py:SPEC",
                              extra=f'[external.etf_flows]\npath = "{URL}"')
        args = ["--allow-external-strategies"]
    code, out, err = cli(["run", str(config), "--out", str(tmp_path / "out"), *args], capsys)
    assert code == 2 and "expected an existing data file" in err
    assert "secret" not in out + err and "u:***@host" in err
