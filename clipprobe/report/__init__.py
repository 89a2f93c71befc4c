"""Reports from result files: format-neutral tables, then the terminal, Markdown, HTML (with plots), JSON and CSV,
and the CI gate (floors and regressions against a reference)."""
