"""The Jinja2 environment of the pages and the one script every page inlines.

Pages are single offline files: the partial plotly.js bundle vendored in ``static/`` (see its
README: scatter, bar and pie traces, about 1.2 MB) is inlined once per page, chart data travels
as JSON in a ``<script type="application/json">`` block and Jinja2 autoescapes everything else.

Jinja2 is imported on the first render only (about 15 ms a process that writes no page, such as
a search worker, does not pay), and compiled templates are kept in a per-user cache
(:func:`cache_dir`): compiling the run page costs ~25 ms and the optimization page ~20 ms more
in every ``crashbt`` process, loading them ~1 ms. :func:`precompile` fills the cache at install.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import markupsafe

from backtest.report import charts, formatting

if TYPE_CHECKING:
    import jinja2

PLOTLY_BUNDLE = "plotly-basic.min.js"


@cache
def plotly_js() -> markupsafe.Markup:
    """The vendored partial plotly.js bundle, safe to inline inside ``<script>``."""
    text = resources.files("backtest.report").joinpath("static", PLOTLY_BUNDLE).read_text(
        encoding="utf-8")
    return markupsafe.Markup(text.replace("</script", "<\\/script"))


def cache_dir() -> Path | None:
    """The folder of compiled templates: ``$XDG_CACHE_HOME/crashbt`` (``~/.cache/crashbt``
    when unset), then one folder per jinja2 version and per source of this module, as both
    shape the compiled code (a template's own edits are caught by jinja2's source checksum).
    None when no private folder can be had (no home, read-only, shared with other users):
    templates are then compiled in memory, as before."""
    import jinja2

    base = os.environ.get("XDG_CACHE_HOME", "")
    try:
        root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
        digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
        folder = root / "crashbt" / f"templates-jinja2-{jinja2.__version__}-{digest}"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.lstat()
    except (OSError, RuntimeError):  # RuntimeError: Path.home() without a home
        return None
    private = (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
               and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))
    return folder if private else None  # code loaded from a folder others can write: no


def _bytecode_cache(folder: Path) -> jinja2.BytecodeCache:
    """jinja2's file cache (atomic writes, source checksums) where a cache that cannot be read
    or written is a miss, never a failed report."""
    import jinja2

    class QuietCache(jinja2.FileSystemBytecodeCache):
        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            try:
                super().load_bytecode(bucket)
            except Exception:  # unreadable or foreign bytes (pickle, marshal): compile again
                bucket.reset()

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            with contextlib.suppress(OSError):
                super().dump_bytecode(bucket)

    return QuietCache(str(folder))


@cache
def environment() -> jinja2.Environment:
    import jinja2

    folder = cache_dir()
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("backtest.report", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        bytecode_cache=_bytecode_cache(folder) if folder is not None else None,
    )
    env.filters["num"] = formatting.format_number
    env.filters["metric"] = lambda value, key: formatting.format_metric(key, value)
    env.filters["label"] = formatting.metric_label
    env.filters["trade"] = formatting.format_trade
    env.filters["param"] = formatting.format_param
    env.filters["raw"] = formatting.raw_value
    env.globals["plotly_js"] = plotly_js
    return env


def precompile() -> list[str]:
    """Compile every page template into the cache (``backtest.warmup`` calls it at install, so
    a user's first page loads compiled code too); returns the template names."""
    env = environment()
    names = env.list_templates(extensions=["html"])
    for name in names:
        env.get_template(name)
    return names


def render(template: str, figures: list[dict[str, Any]],
           series: dict[str, list[Any]] | None = None, **context: Any) -> str:
    """A page: the template with its figures, and the chart JSON (figures plus the shared
    ``series`` their traces reference) for the page's plot loop."""
    data = charts.script_json({"series": series or {}, "figures": figures})
    return environment().get_template(template).render(figures=figures, figures_json=data,
                                                        **context)
