"""The service's settings, in one place."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from device_runtime.state import STATE_FILE
from edgeft.config import DriftConfig
from edgeft.signing import trust_from_env

EXAMPLES_DB = "examples.sqlite"


@dataclasses.dataclass(frozen=True)
class ServiceSettings:
    """How one on-device service behaves. Build with :meth:`for_model`."""

    model: Path  # the bundle or state folder given on the command line
    state_dir: Path  # the personalized head and the examples database live here
    max_body_bytes: int = 1024 * 1024  # 1 MiB: a batch of texts, or a few small images
    max_batch: int = 64  # inputs per predict request; bounds one request's latency
    max_text_chars: int = 10_000  # per text; the tokenizer truncates at max_length tokens anyway
    max_examples_per_request: int = 1_000
    min_examples: int = 2  # a personalization job needs at least this many stored examples
    trust: str | None = None  # trust file for the bundle's signature (edgeft.signing); for_model reads $EDGEFT_TRUST
    # The served model's drift window and test (checks every 50 predictions at level 0.01 by default).
    drift: DriftConfig = dataclasses.field(default_factory=DriftConfig)
    # The policy, off by default: on drift, personalize if this many labelled examples came since the last job.
    retrain_on_drift: int | None = None

    @classmethod
    def for_model(cls, model: str | os.PathLike, state_dir: str | os.PathLike | None = None, **overrides: Any) -> ServiceSettings:
        """Settings for ``model``; the state folder defaults to ``model`` itself when it is a
        state, else to ``<model>-state`` beside the bundle."""
        model = Path(model)
        if state_dir is None:
            state_dir = model if (model / STATE_FILE).is_file() else model.with_name(f"{model.name}-state")
        overrides.setdefault("trust", trust_from_env())
        return cls(model=model, state_dir=Path(state_dir), **overrides)

    @property
    def examples_db(self) -> Path:
        return self.state_dir / EXAMPLES_DB
