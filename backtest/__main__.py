"""``python -m backtest`` runs the crashbt CLI."""

import sys

from backtest.cli import entry

sys.exit(entry())
