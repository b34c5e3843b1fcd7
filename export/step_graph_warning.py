"""The warning of a bundle written without step graphs, importable without torch."""


class StepGraphWarning(UserWarning):
    """The bundle ships without step graphs: no torch to trace them, or an operator they cannot differentiate."""
