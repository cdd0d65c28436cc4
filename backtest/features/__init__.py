"""Causal features: indicators on bars and daily series (indicators) and level events (levels)."""
