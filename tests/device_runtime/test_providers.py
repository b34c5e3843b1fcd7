"""The backbone runs on a list of execution providers, falls back to CPU with a warning, and says which ran."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from device_runtime import ProviderFallbackWarning
from device_runtime.engines import open_engine
from device_runtime.sessions import resolve_providers
from edgeft.bundle import Bundle
from edgeft.config import Engine
from edgeft.errors import ConfigError


def test_cpu_is_the_default_and_reported(make_personalizer, user):
    p = make_personalizer()
    assert p.provider == "CPUExecutionProvider"
    assert p.fit(*user, epochs=1).report_.provider == "CPUExecutionProvider"


def test_a_provider_missing_from_this_build_falls_back_to_cpu_with_a_warning(make_personalizer):
    with pytest.warns(ProviderFallbackWarning, match="CUDAExecutionProvider is not in this onnxruntime build"):
        p = make_personalizer(providers=("cuda", "xnnpack", "cpu"))
    assert p.provider == "CPUExecutionProvider"


def test_short_and_full_provider_names_resolve_and_unknown_ones_raise():
    assert resolve_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.warns(ProviderFallbackWarning):
        assert resolve_providers(["qnn", "coreml", "nnapi"]) == ["CPUExecutionProvider"]
    with pytest.raises(ConfigError, match="Unknown execution provider 'tpu'"):
        resolve_providers(["tpu"])


def test_thread_counts_reach_the_session(make_personalizer):
    options = make_personalizer(intra_op_threads=1, inter_op_threads=1).backbone.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    with pytest.raises(ConfigError, match="intra_op_threads must be an integer >= 0"):
        make_personalizer(intra_op_threads=-1)


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts this process's threads through Linux's /proc")
def test_thread_counts_reach_the_head_training_sessions_too(minilm_bundle):
    bundle = Bundle.load(minilm_bundle)
    before = _threads()
    engine = open_engine(Engine.ORT, bundle, threads=(1, 1))  # one thread each: ORT starts no thread pool
    assert _threads() == before, engine
