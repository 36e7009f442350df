"""The wire contract v1: one JSON Schema per topic and the one validation function.

Every producer and consumer in the project goes through :func:`validate` (for values it
builds) or :func:`decode` (for bytes it reads), so the contract cannot drift between the
simulator, the workers, the trainer and the DLQ tooling. See docs/contract.md.

JSON Schema checks shape and types; a few rules it cannot say are checked here as well:
numbers must be finite (Python's json accepts ``NaN`` and ``1e999``), and string timestamps
must be RFC 3339 with a zone.

Every record a worker reads is validated, so the schema check has a fast path: each schema is
also compiled to Python code by fastjsonschema (~3 us a transaction instead of jsonschema's
~50 us). A record that passes the compiled check is valid; one that fails it goes to
jsonschema, the reference, which decides and says why. Where the two could differ, the
reference wins, and a property test checks that the compiled check never accepts a record
the reference rejects.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema

__all__ = [
    "KINDS",
    "ContractError",
    "Decoded",
    "dead_letter",
    "decode",
    "encode",
    "parse_ts",
    "schema",
    "validate",
]

#: Contract kind -> schema file. Topic *names* are configurable; kinds are not.
KINDS: dict[str, str] = {
    "transactions": "transactions.json",
    "labels": "labels.json",
    "scores": "scores.json",
    "dlq": "dlq.json",
    "training-examples": "training-examples.json",
    "model-updates": "model-updates.json",
    "synthetic-frauds": "synthetic-frauds.json",
    "control": "control.json",
}

# Fields holding a timestamp that may be an RFC 3339 string (parsed and range-checked here).
_TS_FIELDS = {"transactions": ("ts",), "labels": ("ts",)}
# 1970 .. 2200: anything outside is a unit mistake (ms instead of s) rather than a real time.
_TS_MAX = 7_258_118_400.0


class ContractError(ValueError):
    """A value that does not satisfy the contract; ``errors`` lists every reason."""

    def __init__(self, kind: str, errors: list[str]):
        super().__init__(f"invalid {kind} record: " + "; ".join(errors))
        self.kind = kind
        self.errors = errors


@cache
def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a contract kind."""
    if kind not in KINDS:
        raise KeyError(f"unknown contract kind {kind!r}; expected one of {sorted(KINDS)}")
    text = resources.files("fraudstream.stream").joinpath("schemas", KINDS[kind]).read_text("utf-8")
    return json.loads(text)


@cache
def _validator(kind: str) -> jsonschema.protocols.Validator:
    sch = schema(kind)
    cls = jsonschema.validators.validator_for(sch)
    cls.check_schema(sch)
    return cls(sch)


@cache
def _compiled(kind: str) -> Any:
    return fastjsonschema.compile(schema(kind))


def _passes_compiled_check(kind: str, value: dict[str, Any]) -> bool:
    try:
        _compiled(kind)(value)
    except Exception:  # a rejection (or any trouble in the generated code): jsonschema decides
        return False
    return True


def parse_ts(value: Any) -> float:
    """Epoch seconds from an RFC 3339 string (zone required) or a number.

    >>> parse_ts("2026-01-01T00:00:00Z")
    1767225600.0
    >>> parse_ts(1767225600)
    1767225600.0
    """
    if isinstance(value, bool):
        raise ValueError("a timestamp cannot be a boolean")
    if isinstance(value, (int, float)):
        ts = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"timestamp {value!r} is not RFC 3339 (e.g. 2026-01-01T12:00:00Z)") from None
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no time zone; add Z or +hh:mm")
        ts = parsed.timestamp()
    else:
        raise ValueError(f"timestamp must be a string or a number, not {type(value).__name__}")
    if not math.isfinite(ts) or not 0 <= ts < _TS_MAX:
        raise ValueError(
            f"timestamp {value!r} is outside 1970..2200 (epoch seconds expected, not milliseconds)"
        )
    return ts


def _non_finite(value: Any, path: str = "") -> list[str]:
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{path or 'value'} is {value} (numbers must be finite)"]
    if isinstance(value, dict):
        return [e for k, v in value.items() for e in _non_finite(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in _non_finite(v, f"{path}[{i}]")]
    return []


def validate(kind: str, value: Any) -> list[str]:
    """Every reason ``value`` breaks the contract for ``kind``; an empty list means valid."""
    if not isinstance(value, dict):
        return [f"a {kind} record must be a JSON object, got {type(value).__name__}"]
    errors = _non_finite(value)
    if not _passes_compiled_check(kind, value):
        for err in sorted(_validator(kind).iter_errors(value), key=lambda e: list(e.absolute_path)):
            field = ".".join(str(p) for p in err.absolute_path) or "record"
            errors.append(f"{field}: {_short(err)}")
    for field in _TS_FIELDS.get(kind, ()):
        already_reported = any(e.startswith(field + " ") or e.startswith(field + ":") for e in errors)
        if field in value and not already_reported:
            try:
                parse_ts(value[field])
            except ValueError as exc:
                errors.append(f"{field}: {exc}")
    return errors


def _short(err: jsonschema.ValidationError) -> str:
    # jsonschema's oneOf message dumps the whole sub-schema; say what was expected instead.
    if err.validator == "oneOf":
        return f"{err.instance!r} is neither an RFC 3339 string nor epoch seconds >= 0"
    return err.message


def encode(kind: str, value: dict[str, Any]) -> bytes:
    """Validate and serialise a value for the wire (compact UTF-8 JSON)."""
    errors = validate(kind, value)
    if errors:
        raise ContractError(kind, errors)
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")


@dataclass(frozen=True)
class Decoded:
    """Outcome of decoding one message: a valid ``value`` or an ``error`` a person can act on."""

    value: dict[str, Any] | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def decode(kind: str, raw: bytes | None, max_bytes: int = 64 * 1024) -> Decoded:
    """Bytes off the wire -> a contract-valid dict, or the reason it is not. Never raises."""
    if raw is None:
        return Decoded(None, "empty message (null value / tombstone)")
    if len(raw) > max_bytes:
        return Decoded(None, f"payload is {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Decoded(None, f"payload is not UTF-8 (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        return Decoded(None, "malformed JSON: nested too deeply")
    except ValueError as exc:
        return Decoded(None, f"malformed JSON: {exc}")
    errors = validate(kind, value)
    if errors:
        return Decoded(None, "; ".join(errors))
    return Decoded(value, None)


def dead_letter(error: str, raw: bytes | None, topic: str, partition: int, offset: int,
                key: bytes | None, at: float) -> dict[str, Any]:
    """The DLQ record for a rejected message: reason, where it came from, the original bytes."""
    return {
        "error": error,
        "source": {
            "topic": topic,
            "partition": int(partition),
            "offset": int(offset),
            "key_b64": base64.b64encode(key).decode("ascii") if key is not None else None,
        },
        "payload_b64": base64.b64encode(raw or b"").decode("ascii"),
        "at": at,
    }

