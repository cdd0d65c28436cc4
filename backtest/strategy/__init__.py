"""The strategy contract: frozen Params, a search space as data, two pure functions."""
