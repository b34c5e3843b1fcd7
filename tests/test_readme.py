"""The README's commands run as written from a fresh checkout.

Every fenced block of README.md says what it is (``sh``, ``bash``, ``python``, or ``text`` for output, listings and
synopses). The sh, bash and python blocks run in the README's order, in one folder laid out like the checkout's root:
``.venv`` beside them and on PATH (as ``. .venv/bin/activate`` leaves it), the checkout's packages importable, and
nothing else there until a block writes it (``python -m example_data`` writes the data files).

A block marked ``<!-- readme-test: long: REASON -->`` takes minutes; one marked ``<!-- readme-test: skip: REASON -->``
starts servers or needs what only its reader has (a network, TLS files). Both are skipped with their reason, after
checking that every data file they name exists by then; ``EDGEFT_README_LONG=1`` runs the long ones too. Where the
exports are skipped, the personalizing example loads the suite's MiniLM bundle, exported from the same server
articles, in their place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
KINDS = {"sh", "bash", "python", "text"}
MARKER = re.compile(r"<!-- readme-test: (long|skip): (.+) -->")
RUN_LONG = os.environ.get("EDGEFT_README_LONG") == "1"
FILE_OPTIONS = {
    "--data",
    "--train-data",
    "--test-data",
    "--tokenizer",
    "--bundle",
}  # options whose value is a file the command reads
MINILM_BUNDLE = "bundles/minilm-bbc"  # where the README's first export writes the bundle the later blocks load


@dataclasses.dataclass(frozen=True)
class Block:
    line: int  # of the opening fence
    kind: str
    code: str
    marker: str | None  # "long" (minutes) or "skip" (servers, a network): the test does not run it by default
    reason: str | None  # why


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of ``text``, with the marker written on the line before a block's fence."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            marker = MARKER.fullmatch(lines[i - 1].strip()) if i else None
            code = "\n".join(lines[i + 1 : end]) + "\n"
            blocks.append(Block(i + 1, lines[i][3:].strip(), code, *(marker.groups() if marker else (None, None))))
            i = end
        i += 1
    return blocks


def files_named(block: Block) -> list[str]:
    """The files a shell block's commands read: the values of ``--data`` and the like, and ``--model`` paths."""
    if block.kind not in {"sh", "bash"}:
        return []
    words = shlex.split(block.code.replace("\\\n", " "), comments=True)
    pairs = list(itertools.pairwise(words))
    model_paths = [value for option, value in pairs if option == "--model" and "/" in value and not value.startswith("$")]
    return [value for option, value in pairs if option in FILE_OPTIONS] + model_paths


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
RUNNABLE = [block for block in BLOCKS if block.kind != "text"]


def test_every_block_of_the_readme_says_what_it_is() -> None:
    unmarked = [f"README.md:{block.line} {block.kind or '(none)'}" for block in BLOCKS if block.kind not in KINDS]
    assert unmarked == [], f"tag each fenced block with one of {sorted(KINDS)}"


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A folder that stands for a fresh checkout's root after ``make setup``; with the exports skipped, the MiniLM bundle."""
    root = tmp_path_factory.mktemp("checkout")
    (root / ".venv").symlink_to((REPO / ".venv").resolve(), target_is_directory=True)
    if not RUN_LONG:
        shutil.copytree(request.getfixturevalue("minilm_bundle"), root / MINILM_BUNDLE)
    yield root


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"README.md:{block.line}" for block in RUNNABLE])
def test_the_readme_block_runs_as_written(block: Block, checkout: Path) -> None:
    if block.marker == "skip" or (block.marker == "long" and not RUN_LONG):
        missing = [name for name in files_named(block) if not (checkout / name).exists()]
        assert missing == [], f"README.md:{block.line} reads {missing}, which no block before it writes"
        pytest.skip(f"{block.marker}: {block.reason}")
    venv_bin = str(checkout / ".venv" / "bin")
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    command = ["bash", "-e", "-c", block.code] if block.kind in {"sh", "bash"} else [f"{venv_bin}/python", "-c", block.code]
    # A session of its own, so that whatever a block leaves running in the background ends with it.
    process = subprocess.Popen(
        command, cwd=checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=1800)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    assert result.returncode == 0, f"README.md:{block.line} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
