"""Fixtures for the deployment tests: the real Prometheus tools, installed when missing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "deploy" / "install-tools.sh"


@pytest.fixture(scope="session")
def tools() -> dict[str, Path]:
    """``{"prometheus", "promtool", "compose-spec"}`` -> binary, from deploy/install-tools.sh.

    The script is idempotent and cached outside the repository; when a tool cannot be had
    it exits non-zero and this fixture fails the test with its message (never a skip).
    """
    proc = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"{INSTALL} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}", pytrace=False)
    found = {}
    for line in proc.stdout.splitlines():
        name, _, path = line.partition(" ")
        found[name] = Path(path)
    for name in ("prometheus", "promtool", "compose-spec"):
        assert name in found and found[name].is_file(), (name, proc.stdout)
    return found
