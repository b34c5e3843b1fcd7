"""The on-device HTTP service: apps predict, post examples and personalize over HTTP.

Needs the ``serve`` extra (FastAPI, uvicorn); nothing else in ``device_runtime``
imports this package.
"""
