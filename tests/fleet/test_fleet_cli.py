"""`edgeft fleet ... --help` documents every option, and the CLI loads without importing Flower."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


@pytest.mark.parametrize("command", ["simulate", "serve", "join"])
def test_every_fleet_option_says_what_it_does_and_its_default(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edgeft", "fleet", command, "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    text = re.sub(r"\s+", " ", result.stdout.split("options:", 1)[1])
    options = re.findall(r"(--[a-z-]+)(?: [A-Z_]+)? ", text)
    assert len(set(options)) >= 6
    for chunk in re.split(r" (?=--[a-z-]+(?: [A-Z_]+)? [a-z])", text)[1:]:
        if chunk.startswith("--help"):
            continue
        assert "(default" in chunk or "(required)" in chunk, chunk


def test_the_cli_does_not_import_flower_until_a_fleet_command_runs() -> None:
    code = "import sys, edgeft.cli; edgeft.cli._parser(); print('flwr' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
