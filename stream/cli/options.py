"""Flag helpers shared by the subcommand modules."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["add_loglevel", "elapsed_say", "env", "print_result", "write_json"]


def env(field: str) -> str:
    """How a flag's help names the setting behind it: ``env FRAUDSTREAM_<FIELD>``."""
    return f"env FRAUDSTREAM_{field.upper()}"


def add_loglevel(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])


def print_result(result: dict[str, Any], table: Callable[[dict[str, Any]], str],
                 path: str | None) -> None:
    """Print a benchmark's result as JSON and as its table; also write the JSON to ``path``."""
    text = json.dumps(result, indent=2)
    print(text)
    print(table(result))
    if path:
        Path(path).write_text(text + "\n")


def elapsed_say() -> Callable[[str], None]:
    """A progress printer for stderr that stamps each line with the seconds since it was made."""
    t0 = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {message}", file=sys.stderr, flush=True)

    return say


def write_json(path: str, obj: Any) -> Path:
    """``obj`` as strict JSON in ``path`` (its folder made if need be); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(obj, indent=1, allow_nan=False), encoding="utf-8")
    return out
