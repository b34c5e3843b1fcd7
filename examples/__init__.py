"""Runnable studies and the demo, each a module run from the checkout: ``python -m examples.demo_bbc``.

They read their data through :mod:`example_data`, which lives beside them in the checkout and is not installed.
"""
