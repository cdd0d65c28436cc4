"""The HTML pages crashbt writes, one entry point per page kind (callers import this module).

Pure renderings: every number shown comes from ``report.json`` / ``optimization.json`` and the
CSV records beside them. Pages are single offline files (see :mod:`backtest.report.templating`);
each page lives in :mod:`backtest.report.pages`, shared chart helpers in
:mod:`backtest.report.charts`, number formats in :mod:`backtest.report.formatting`.
"""

from __future__ import annotations

from backtest.report.formatting import format_number
from backtest.report.pages.optimization import render_optimization
from backtest.report.pages.run import RunRecords, read_run_dir, render_run, render_run_dir

__all__ = ["RunRecords", "format_number", "read_run_dir", "render_optimization", "render_run",
           "render_run_dir"]
