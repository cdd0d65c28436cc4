"""One module per HTML page kind: run, optimization, compare."""
