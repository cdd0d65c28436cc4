"""Performance metrics of a run (performance) and overfitting statistics of a search (overfit)."""
