"""TOML config -> frozen, validated objects: the run (schema) and the search (optimize)."""
