"""The header of a user's bar file, read as crashbt's column names.

A ``[data.columns]`` table maps a bar column to the file's own header (``timestamp = "Date"``);
other headers are recognised case-insensitively when they are the common ones: yfinance
(``Date,Open,High,Low,Close,Adj Close,Volume``), a Binance kline export with a header
(``open_time,...,count,taker_buy_volume,...``) and CCXT's ``timestamp,open,high,low,close,volume``.
Unrecognised columns keep their names and are ignored by the bar reader (``Adj Close``: the bars
are the traded prices, not dividend-adjusted ones).

Imports from crashbt only :mod:`backtest.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping

from backtest.errors import DataError, did_you_mean

#: lower-case header -> bar column
ALIASES = {
    "timestamp": "timestamp", "date": "timestamp", "datetime": "timestamp", "time": "timestamp",
    "open_time": "timestamp", "open time": "timestamp", "opentime": "timestamp",
    "open": "open", "high": "high", "low": "low", "close": "close", "volume": "volume",
    "quote_volume": "quote_volume", "quote_asset_volume": "quote_volume",
    "trades": "trades", "count": "trades", "number_of_trades": "trades",
    "taker_buy_base_volume": "taker_buy_base_volume", "taker_buy_volume": "taker_buy_base_volume",
    "taker_buy_base_asset_volume": "taker_buy_base_volume",
    "taker_buy_quote_volume": "taker_buy_quote_volume",
    "taker_buy_quote_asset_volume": "taker_buy_quote_volume",
}


def canonical_names(label: str, header: list[str], columns: Mapping[str, str]) -> list[str]:
    """``header`` renamed to bar columns: ``columns`` (bar column -> file header) first, then
    :data:`ALIASES`; a mapped header missing from the file or a bar column found twice (e.g. both
    ``Date`` and ``timestamp``) raises."""
    cells = [h.strip().strip('"').strip() for h in header]
    explicit = {file_name: bar for bar, file_name in columns.items()}
    for bar, file_name in columns.items():
        if file_name not in cells:
            raise DataError(f"{label}: data.columns.{bar}: expected a column named "
                            f"{file_name!r}, found columns {', '.join(cells)}"
                            f"{did_you_mean(file_name, cells)}")
    # a header aliasing a column that [data.columns] maps explicitly keeps its own name
    names = [explicit[c] if c in explicit
             else c if ALIASES.get(c.lower()) in columns else ALIASES.get(c.lower(), c)
             for c in cells]
    seen: set[str] = set()
    for name, cell in zip(names, cells, strict=True):
        if name in ALIASES.values() and name in seen:
            raise DataError(f"{label}: column {cell!r}: expected one column for {name!r}, found "
                            f"two; name the one to use in [data.columns]")
        seen.add(name)
    return names
