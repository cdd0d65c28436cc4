"""vectorbt 1.2's Rust portfolio kernels called without importing the ``vectorbt`` package.

Importing any ``vectorbt`` submodule runs its package ``__init__`` (indicators, plotting, the
numba kernels of every module: 1.3-2 s of a cold ``crashbt run``); the compiled extension
``vectorbt_rust`` loads in ~20 ms. :func:`simulate_from_signals` and :func:`get_exit_trades`
are ``vectorbt.portfolio.dispatch``'s functions of the same names for ``engine="rust"``: the
same keyword arguments and defaults, each flexible argument converted to the exact dtype
dispatch hands the extension, and the same positional call. ``enums`` holds the integer values
of the vectorbt enum members crashbt passes.

The extension itself imports ``vectorbt.portfolio.enums`` for its record dtypes, which would run
the package ``__init__`` after all; unless vectorbt is loaded already, modules holding only
those three dtypes stand in for it during the call (:func:`_record_dtypes`).
tests/test_engine_vbt_rust.py asserts records equal to vectorbt's dispatch, the dtypes and enum
values equal to vectorbt's, and that a run on this path in a fresh process imports no vectorbt.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np

enums = SimpleNamespace(
    SizeType=SimpleNamespace(Amount=0),
    AccumulationMode=SimpleNamespace(Disabled=0),
    ConflictMode=SimpleNamespace(Ignore=0),
    DirectionConflictMode=SimpleNamespace(Ignore=0),
    OppositeEntryMode=SimpleNamespace(Reverse=3),
    StopEntryPrice=SimpleNamespace(FillPrice=2),
    StopExitPrice=SimpleNamespace(StopMarket=1),
    StopExitMode=SimpleNamespace(Close=0),
    StopUpdateMode=SimpleNamespace(Override=1),
)

_B, _I, _F = np.bool_, np.int64, np.float64


def _record(fields: str) -> np.dtype:
    """An aligned record dtype from ``"name:code ..."`` (i int64, f float64, b bool)."""
    codes = {"i": "<i8", "f": "<f8", "b": "?"}
    pairs = [field.split(":") for field in fields.split()]
    return np.dtype({"names": [n for n, _ in pairs], "formats": [codes[c] for _, c in pairs]},
                    align=True)


RECORD_DTYPES = {  # vectorbt.portfolio.enums.order_dt, trade_dt and log_dt
    "order_dt": _record("id:i col:i idx:i size:f price:f fees:f side:i"),
    "trade_dt": _record("id:i col:i size:f entry_idx:i entry_price:f entry_fees:f exit_idx:i "
                        "exit_price:f exit_fees:f pnl:f return:f direction:i status:i "
                        "parent_id:i"),
    "log_dt": _record(
        "id:i group:i col:i idx:i cash:f position:f debt:f free_cash:f val_price:f value:f "
        "req_size:f req_price:f req_size_type:i req_direction:i req_fees:f req_fixed_fees:f "
        "req_slippage:f req_min_size:f req_max_size:f req_size_granularity:f "
        "req_reject_prob:f req_lock_cash:b req_allow_partial:b req_raise_reject:b req_log:b "
        "new_cash:f new_position:f new_debt:f new_free_cash:f new_val_price:f new_value:f "
        "res_size:f res_price:f res_fees:f res_side:i res_status:i res_status_info:i "
        "order_id:i"),
}


@contextmanager
def _record_dtypes() -> Iterator[None]:
    """Let the extension import its record dtypes without importing the vectorbt package: it
    imports ``vectorbt``, ``vectorbt.portfolio`` and reads ``.enums.order_dt`` (and
    ``trade_dt``, ``log_dt``)."""
    if "vectorbt" in sys.modules:  # vectorbt is loaded (tests, peers): the real modules
        yield
        return
    chain = {name: ModuleType(name, "record dtypes only (backtest.engine.vbt_rust)")
             for name in ("vectorbt", "vectorbt.portfolio", "vectorbt.portfolio.enums")}
    chain["vectorbt"].portfolio = chain["vectorbt.portfolio"]
    chain["vectorbt.portfolio"].enums = chain["vectorbt.portfolio.enums"]
    vars(chain["vectorbt.portfolio.enums"]).update(RECORD_DTYPES)
    sys.modules.update(chain)
    try:
        yield
    finally:
        for name, module in chain.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


_FLEX_ARGS: tuple[tuple[str, Any, Any], ...] = (
    ("entries", False, _B), ("exits", False, _B), ("direction", 0, _I),
    ("long_entries", False, _B), ("long_exits", False, _B), ("short_entries", False, _B),
    ("short_exits", False, _B), ("size", np.inf, _F), ("price", np.inf, _F),
    ("size_type", 0, _I), ("fees", 0.0, _F), ("fixed_fees", 0.0, _F), ("slippage", 0.0, _F),
    ("min_size", 0.0, _F), ("max_size", np.inf, _F), ("size_granularity", np.nan, _F),
    ("reject_prob", 0.0, _F), ("lock_cash", False, _B), ("allow_partial", True, _B),
    ("raise_reject", False, _B), ("log", False, _B), ("accumulate", 0, _I),
    ("upon_long_conflict", 0, _I), ("upon_short_conflict", 0, _I),
    ("upon_dir_conflict", 0, _I), ("upon_opposite_entry", 4, _I), ("val_price", np.inf, _F),
    ("open", np.nan, _F), ("high", np.nan, _F), ("low", np.nan, _F), ("close", np.nan, _F),
    ("sl_stop", np.nan, _F), ("sl_trail", False, _B), ("tp_stop", np.nan, _F),
    ("stop_entry_price", 3, _I), ("stop_exit_price", 0, _I), ("upon_stop_exit", 0, _I),
    ("upon_stop_update", 1, _I),
)
_FLEX_NAMES = frozenset(name for name, _, _ in _FLEX_ARGS)


def simulate_from_signals(target_shape: tuple[int, int], group_lens: np.ndarray,
                          init_cash: np.ndarray, call_seq: np.ndarray, *, use_stops: bool = True,
                          auto_call_seq: bool = False, ffill_val_price: bool = True,
                          update_value: bool = False, max_orders: int | None = None,
                          max_logs: int = 0, init_temp_records: bool = False,
                          flex_2d: bool = True, seed: int | None = None, engine: str = "rust",
                          **flex: Any) -> tuple[np.ndarray, np.ndarray]:
    """(order records, log records) of vectorbt's Rust ``simulate_from_signals``.

    Randomized rejection (``reject_prob > 0``) runs in numba in vectorbt and is refused here.
    """
    from vectorbt_rust.portfolio import simulate_from_signals_rs

    unknown = set(flex) - _FLEX_NAMES
    if engine != "rust" or unknown:
        raise TypeError(f"simulate_from_signals: expected engine='rust' and flexible arguments "
                        f"of vectorbt's dispatch, found engine={engine!r}, {sorted(unknown)}")
    arrays = [np.asarray(flex.get(name, default), dtype=dtype)
              for name, default, dtype in _FLEX_ARGS]
    if np.any(arrays[16] > 0):  # reject_prob
        raise ValueError("simulate_from_signals: reject_prob > 0 needs vectorbt's numba engine")
    with _record_dtypes():
        return simulate_from_signals_rs(
            target_shape, np.asarray(group_lens, dtype=_I), np.asarray(init_cash, dtype=_F),
            call_seq, *arrays, use_stops=use_stops, auto_call_seq=auto_call_seq,
            ffill_val_price=ffill_val_price, update_value=update_value, max_orders=max_orders,
            max_logs=max_logs, init_temp_records=init_temp_records, seed=seed, flex_2d=flex_2d)


def get_exit_trades(order_records: np.ndarray, close: np.ndarray,
                    col_map: tuple[np.ndarray, np.ndarray], engine: str = "rust") -> np.ndarray:
    """Exit-trade records of vectorbt's Rust ``get_exit_trades``."""
    from vectorbt_rust.portfolio import get_exit_trades_rs

    if engine != "rust":
        raise TypeError(f"get_exit_trades: expected engine='rust', found {engine!r}")
    col_idxs, col_lens = col_map
    with _record_dtypes():
        return get_exit_trades_rs(order_records, np.asarray(close, dtype=_F),
                                  np.asarray(col_idxs, dtype=_I), np.asarray(col_lens, dtype=_I))
