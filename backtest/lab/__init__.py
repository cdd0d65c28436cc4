"""The crash lab: event studies of crash signals and stress tests on synthetic crash histories.

Sits beside :mod:`backtest.pipeline` (above engine, metrics and report). ``events`` measures
what followed point-in-time crash events; ``stress`` runs a strategy over block-bootstrapped
histories that keep calm and crash regimes apart.
"""
