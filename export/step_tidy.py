"""Identity nodes out of a traced step graph: each one copies its tensor at every step.

The TorchScript exporter writes ``detach``, ``alias`` and dtype-preserving ``_to_copy`` as Identity. ONNX Runtime's
optimizer removes those inside the graph but keeps the ones that produce graph outputs, which every updated
parameter and moment passes through: a copy of the whole state per step (3% of a step of two MiniLM layers).
"""

from __future__ import annotations

import onnx


def without_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every Identity node removed whose input can take its output's place.

    An Identity inside the graph gives way to its input; one that produces a graph output renames its input's
    producer to that output, unless the input is itself a graph input, an initializer or another graph output.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    outputs = {o.name for o in graph.output}
    fixed = {i.name for i in graph.input} | {t.name for t in graph.initializer} | outputs
    renames: dict[str, str] = {}  # a value's name -> the name it takes
    kept = []
    for node in graph.node:
        if node.op_type == "Identity":
            source = _final(renames, node.input[0])
            if node.output[0] not in outputs:
                renames[node.output[0]] = source
                continue
            if source not in fixed:
                renames[source] = node.output[0]
                fixed.add(node.output[0])
                continue
        kept.append(node)
    for node in kept:
        node.input[:] = [_final(renames, name) for name in node.input]
        node.output[:] = [_final(renames, name) for name in node.output]
    del graph.node[:], graph.value_info[:]
    graph.node.extend(kept)
    return model


def _final(renames: dict[str, str], name: str) -> str:
    while name in renames:
        name = renames[name]
    return name
