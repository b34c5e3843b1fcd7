"""Side-by-side benchmarks of edgeft against what a user would pick instead.

``python -m benchmarks --mode quick`` (or ``make bench``) prepares the models
once, runs every alternative in its own process, and writes JSON, a Markdown
table and PNG plots under ``benchmarks/results/``.
"""
