"""What an export is asked for, beyond the source and the bundle config: the server data and fine-tuning."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from edgeft.config import FineTuneConfig
from edgeft.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ServerData:
    """The server's labelled examples, given as arrays or as a file to read; every field is optional.

    Without examples the head ships untrained, and ``label_set`` must name the classes.
    """

    # Texts (a list of str), uint8 images, (n, h, w) or (n, h, w, c) RGB, or float tensors (windows or rows).
    X: Any = None
    labels: list[str] | None = None
    # The classes, in order; default: the sorted labels seen.
    label_set: list[str] | None = None
    # Instead of X and labels: a .csv/.jsonl of texts, a folder of one image sub-folder per class, an .npz,
    # or a .csv of number columns (rows).
    path: str | os.PathLike | None = None
    # The columns of a text file at ``path``.
    text_column: str = "text"
    label_column: str = "label"

    def __post_init__(self) -> None:
        if self.path is not None and (self.X is not None or self.labels is not None):
            raise ConfigError("ServerData takes examples (X, labels) or a file to read them from (path), not both.")

    def read(self, image_size: tuple[int, int] | None) -> tuple[Any, list[str] | None]:
        """The examples and their labels; folder images resized to ``image_size`` (the backbone's input).

        Raises:
            DataError: the file is missing, of an unknown kind, or lacks a column, an array or images.
        """
        if self.path is None:
            return self.X, self.labels
        from export.server_data import read_server_data

        return read_server_data(self.path, text_column=self.text_column, label_column=self.label_column, image_size=image_size)


@dataclasses.dataclass(frozen=True)
class FineTuning:
    """Fine-tune the backbone in torch on the server data before export (same seed and split as the head)."""

    config: FineTuneConfig = FineTuneConfig()
    # Optuna trials over lr, weight decay, dropout and unfrozen depth before fine-tuning; 0: none.
    trials: int = 0
    # Where finetune.json and finetune.png are written; None: nowhere.
    log_dir: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.trials, int) or self.trials < 0:
            raise ConfigError(f"FineTuning.trials must be an integer >= 0, got {self.trials!r}")
