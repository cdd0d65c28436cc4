"""Reports: report.json and CSV files (files), HTML pages (html), run comparison (compare)."""
