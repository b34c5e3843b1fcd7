"""ExecuTorch's rows of the speed comparison: its environment, its programs and its workers (run by its own interpreter)."""
