"""``python -m backtest`` runs the crashbt CLI."""

import sys

from backtest.cli import main

sys.exit(main())
