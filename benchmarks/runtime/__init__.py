"""The device runtime's own costs: step graphs, state growth, the feature cache, ONNX Runtime flavours, the service under load."""
