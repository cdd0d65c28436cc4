"""crashbt's engine package.

For notebooks and scripts: ``from backtest import api`` (see :mod:`backtest.api`). Otherwise
import the modules you need (``backtest.inputs``, ``backtest.pipeline``, ``backtest.config``...);
this file stays empty so the CLI starts fast.
"""
