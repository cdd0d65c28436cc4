"""``[execution]``: how orders fill and what they cost (spot or perpetual futures)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from backtest.config.common import _Strict


class AllIn(_Strict):
    """Every entry spends all free cash (the default)."""

    kind: Literal["all_in"] = "all_in"


class Fraction(_Strict):
    """Each entry commits ``fraction`` of the equity (margin plus fee)."""

    kind: Literal["fraction"]
    fraction: float = Field(gt=0, le=1)


class Notional(_Strict):
    """Each entry buys (or sells) ``notional`` quote currency worth."""

    kind: Literal["notional"]
    notional: float = Field(gt=0, le=1e15)


class Risk(_Strict):
    """Each entry loses ``risk`` x equity if its stop fills at the stop level."""

    kind: Literal["risk"]
    risk: float = Field(gt=0, lt=1)


class VolTarget(_Strict):
    """Each entry's notional is ``target / sigma`` x equity, sigma the annualized realized
    volatility of the last ``lookback`` close-to-close log returns known at the signal."""

    kind: Literal["vol_target"]
    target: float = Field(gt=0, le=10)
    lookback: int = Field(20, ge=2, le=10_000)


Size = Annotated[AllIn | Fraction | Notional | Risk | VolTarget, Field(discriminator="kind")]


class ExecutionConfig(_Strict):
    """``[execution]``: how orders fill and what they cost. See :mod:`backtest.engine`.

    ``instrument = "perp"`` trades a USDT-margined perpetual: isolated margin at ``leverage``,
    tiered maintenance margin (bundled Binance BTCUSDT tiers unless ``maintenance_tiers`` names
    a TOML file or gives ``[[notional_cap, rate, amount, max_leverage], ...]`` inline),
    liquidation with ``liquidation_fee_rate``, and funding when ``funding`` is true; the most
    leverage allowed is the first tier's ``max_leverage`` (checked by the engine, which reads
    the table). Every engine fill is a market order: ``taker_fee_rate`` (when set) replaces
    ``fee_rate``. ``size`` decides how much each entry buys (:data:`Size`; the engine module
    docstring states each kind).
    ``slippage_model = "sqrt_impact"`` adds ``slippage_vol_coef x sigma + slippage_impact_coef
    x sigma x sqrt(size / bar volume)`` to ``slippage_rate`` (sigma: realized volatility of the
    last ``slippage_vol_window`` close-to-close log returns).
    """

    init_cash: float = Field(100_000.0, gt=0, le=1e15)
    fee_rate: float = Field(0.001, ge=0, lt=0.1)
    slippage_rate: float = Field(0.0, ge=0, lt=0.1)
    fill: Literal["next_open", "close"] = "next_open"
    direction: Literal["long", "short", "both"] = "both"
    sl_stop: float | None = Field(None, gt=0, lt=1)
    tp_stop: float | None = Field(None, gt=0)
    tsl_stop: float | None = Field(None, gt=0, lt=1)
    engine: Literal["rust", "numba"] = "rust"
    instrument: Literal["spot", "perp"] = "spot"
    leverage: float = Field(1.0, ge=1)
    margin_mode: Literal["isolated"] = "isolated"
    maintenance_tiers: str | list[tuple[float, float, float, float]] | None = None
    liquidation_fee_rate: float = Field(0.0, ge=0, lt=0.1)
    funding: bool = True
    taker_fee_rate: float | None = Field(None, ge=0, lt=0.1)
    slippage_model: Literal["fixed", "sqrt_impact"] = "fixed"
    slippage_vol_coef: float = Field(0.0, ge=0, le=100)
    slippage_impact_coef: float = Field(0.0, ge=0, le=100)
    slippage_vol_window: int = Field(24, ge=2, le=10_000)
    size: Size = AllIn()

    @model_validator(mode="after")
    def _perp_settings(self) -> ExecutionConfig:
        if self.instrument == "spot":
            if self.leverage != 1:
                raise ValueError(f"leverage 1 for instrument 'spot' (set instrument = 'perp' "
                                 f"to trade with leverage), found {self.leverage:g}")
            if self.maintenance_tiers is not None or self.liquidation_fee_rate:
                raise ValueError("instrument 'perp' when maintenance_tiers or "
                                 "liquidation_fee_rate is set, found instrument 'spot'")
        coefs = self.slippage_vol_coef or self.slippage_impact_coef
        if self.slippage_model == "fixed" and coefs:
            raise ValueError("slippage_model 'sqrt_impact' when slippage_vol_coef or "
                             "slippage_impact_coef is set, found 'fixed'")
        if self.slippage_model == "sqrt_impact" and not coefs:
            raise ValueError("slippage_vol_coef or slippage_impact_coef > 0 with slippage_model "
                             "'sqrt_impact', found both 0")
        return self

    @property
    def market_fee_rate(self) -> float:
        """The fee rate of a market (taker) fill: ``taker_fee_rate`` when set, else fee_rate."""
        return self.fee_rate if self.taker_fee_rate is None else self.taker_fee_rate

