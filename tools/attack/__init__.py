"""An attack harness: bad inputs, tampered bundles, trust over every entry point, state tampering, concurrent writers.

    python -m tools.attack --bundles DIR [--mode quick|full] [--out attack.json]

``DIR`` holds a text bundle in ``text/`` and an image bundle in ``image/`` (``--export`` makes them). Each
category prints how many kinds it tried and how many ended in an untyped failure (a raw exception, a
traceback, an HTTP 5xx), a bypass (a tampered bundle loaded under a trust policy) or an unloadable state.
"""
