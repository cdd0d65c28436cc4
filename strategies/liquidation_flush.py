"""liquidation_flush: fade a long-liquidation cascade: buy the bounce with a tight stop.

Rule (decided at a bar's close): a flush is under way AND RSI(``rsi_window``) <= ``rsi_max``.
With an external "liquidations" series (optional; users supply it, see datasets/README.md) a
flush is long-liquidation intensity (long liquidations / their mean over the previous
``liq_window`` days) >= ``liq_k``, and, when an "open_interest" series is supplied too, open
interest down by at least ``oi_drop`` over ``oi_n`` days. Both daily series go onto the bar
clock with :func:`backtest.features.indicators.point_in_time` (day D is known at D+1 00:00 UTC).

Without liquidation data a documented PROXY from bars stands in: the bar falls by at least
``proxy_drop`` (close / open - 1), on volume >= ``proxy_volume_k`` x the mean of the previous
``proxy_volume_window`` bars, with taker-sell dominance: taker_buy_base_volume / volume <=
``proxy_taker_max`` (skipped, and said so, when the bars lack that column). ``Signals.notes``
names which data was used. An entry fires on the first bar of each flush (a state turning on);
it is held ``hold_bars`` bars from its fill (the engine's time exit), with a stop at close x (1 -
``stop_pct``) of the signal bar.
Imports only backtest.types, backtest.features and backtest.strategy.contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from backtest.features.indicators import liq_intensity, oi_change, point_in_time, rsi, volume_ratio
from backtest.features.levels import state_to_events
from backtest.strategy.contract import FloatRange, IntRange, StrategySpec
from backtest.types import Bars, Signals

TAKER = "taker_buy_base_volume"


@dataclass(frozen=True)
class Params:
    liq_window: int = 30
    liq_k: float = 3.0
    oi_n: int = 1
    oi_drop: float = 0.02
    rsi_window: int = 14
    rsi_max: float = 30.0
    proxy_drop: float = 0.05
    proxy_volume_k: float = 2.0
    proxy_volume_window: int = 20
    proxy_taker_max: float = 0.47
    hold_bars: int = 3
    stop_pct: float = 0.04


SPACE = {
    "liq_window": IntRange(7, 90),
    "liq_k": FloatRange(1.5, 10.0),
    "oi_n": IntRange(1, 7),
    "oi_drop": FloatRange(0.0, 0.2),
    "rsi_window": IntRange(5, 30),
    "rsi_max": FloatRange(10.0, 40.0),
    "proxy_drop": FloatRange(0.01, 0.2),
    "proxy_volume_k": FloatRange(1.0, 6.0),
    "proxy_volume_window": IntRange(5, 60),
    "proxy_taker_max": FloatRange(0.3, 0.5),
    "hold_bars": IntRange(1, 30),
    "stop_pct": FloatRange(0.005, 0.15),
}


def features(bars: Bars, params: Params, context: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """RSI plus either the external daily series on the bar clock (``liq_intensity`` and, with
    open interest, ``oi_change``) or the proxy inputs (``bar_return``, ``volume_ratio`` and,
    when the bars carry it, ``taker_buy_share``)."""
    feats = pd.DataFrame({"rsi": rsi(bars["close"], params.rsi_window)}, index=bars.index)
    if "liquidations" in context:
        liq = context["liquidations"]
        daily = liq_intensity(liq["long_liq_usd"], params.liq_window).to_frame("liq_intensity")
        feats = feats.join(point_in_time(daily, liq, bars.index))
        if "open_interest" in context:
            oi = context["open_interest"]
            change = oi_change(oi["open_interest_usd"], params.oi_n).to_frame("oi_change")
            feats = feats.join(point_in_time(change, oi, bars.index))
        return feats
    feats["bar_return"] = bars["close"] / bars["open"] - 1.0
    feats["volume_ratio"] = volume_ratio(bars["volume"], params.proxy_volume_window)
    if TAKER in bars.columns:
        feats["taker_buy_share"] = bars[TAKER] / bars["volume"]
    return feats


def flush_state(feats: pd.DataFrame, params: Params) -> tuple[pd.Series, dict[str, str]]:
    """Whether a flush is under way at each bar, and notes naming the data that said so."""
    if "liq_intensity" in feats:
        flush = feats["liq_intensity"] >= params.liq_k
        notes = {"liquidations": f"external liquidations series: long-liq intensity (vs the "
                                 f"previous {params.liq_window} days) >= {params.liq_k:g}"}
        if "oi_change" in feats:
            flush = flush & (feats["oi_change"] <= -params.oi_drop)
            notes["open_interest"] = (f"external open interest series: {params.oi_n}-day "
                                      f"change <= -{params.oi_drop:g}")
        else:
            notes["open_interest"] = "not supplied: the falling-OI condition is not applied"
        return flush, notes
    flush = ((feats["bar_return"] <= -params.proxy_drop)
             & (feats["volume_ratio"] >= params.proxy_volume_k))
    rule = (f"proxy from bars: close/open - 1 <= -{params.proxy_drop:g} on volume >= "
            f"{params.proxy_volume_k:g} x its {params.proxy_volume_window}-bar mean")
    if "taker_buy_share" in feats:
        flush = flush & (feats["taker_buy_share"] <= params.proxy_taker_max)
        rule += f", taker-buy share <= {params.proxy_taker_max:g}"
    else:
        rule += f"; taker-sell filter skipped (bars without {TAKER})"
    return flush, {"liquidations": rule, "open_interest": "not used by the proxy"}


def signals(bars: Bars, feats: pd.DataFrame, params: Params) -> Signals:
    """Buy the first bar of a flush with deeply oversold RSI; short hold, tight stop."""
    flush, notes = flush_state(feats, params)
    entries = state_to_events(flush & (feats["rsi"] <= params.rsi_max))
    return Signals(
        long_entries=entries.rename("long_entries"),
        long_exits=pd.Series(False, index=bars.index, name="long_exits"),
        max_bars_held=params.hold_bars,
        stop_price=(bars["close"] * (1.0 - params.stop_pct)).rename("stop_price"),
        notes=notes,
    )


SPEC = StrategySpec(
    name="liquidation_flush",
    summary="Buy the bounce after a long-liquidation flush with RSI deeply oversold; tight stop",
    params=Params,
    space=SPACE,
    features=features,
    signals=signals,
    optional=("liquidations", "open_interest"),
)
