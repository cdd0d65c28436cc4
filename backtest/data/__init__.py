"""Bars, external series and crash regimes: find, read, validate and slice market data."""
