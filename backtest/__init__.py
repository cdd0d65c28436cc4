"""crashbt's engine package.

Import the modules you need (``backtest.pipeline``, ``backtest.engine``, ``backtest.config``...);
this file stays empty so the CLI starts fast.
"""
