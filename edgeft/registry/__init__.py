"""The bundle registry: the workstation publishes bundles, devices pull them.

The server side (``app``, ``routers``, ``deps``) needs the ``serve`` extra
(FastAPI, uvicorn). The client (:mod:`edgeft.registry.client`) and the name
and path rules (:mod:`edgeft.registry.paths`) use the standard library only,
so a device can pull without any HTTP dependency.
"""
