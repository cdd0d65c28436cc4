"""The execution engine: vectorbt or the numba kernel turns bars and signals into fills."""
