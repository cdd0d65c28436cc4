"""``crashbt optimize``: an Optuna search that resumes, scales out, and measures its overfitting.

space (dimensions -> suggestions) -> evaluate (one parameter set on every fold) -> workers
(objective, Ctrl-C, processes) -> storage (journal or database) -> summary (report) -> search (the
driver). The only package that imports optuna; it never imports the CLI.
"""
