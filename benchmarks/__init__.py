"""Benchmarks of edgeft, one study per module, grouped by topic; each runs as ``python -m benchmarks.<group>.<study>``.

- ``speed/``: ``python -m benchmarks --mode quick`` (``make bench``, that is ``benchmarks.speed.compare``):
  edgeft against textbook ORT, PyTorch, ExecuTorch and the limit, each alternative in its own process.
- ``executorch/``: ExecuTorch's rows of that comparison, run in ExecuTorch's own environment.
- ``runtime/``: the device runtime's own costs: step graphs, state growth, the feature cache, both ONNX
  Runtime flavours, the HTTP service under load.
- ``quality/``: what personalizing gains and what it costs: the guard, forgetting, trainable text blocks,
  sensors, drift monitoring.
- ``fleet/``: federated heads over simulated devices.

Every study runs in :mod:`benchmarks.harness` (``--mode``, ``--out``, ``--seeds``; its folders; bundles
exported once; ``results.json``, ``results.md`` and PNG plots), so a new study is one module that declares its
modes and measures; the harness's docstring shows one.
"""
