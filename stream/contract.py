"""The wire contract v1: one JSON Schema per topic and the one validation function.

Every producer and consumer in the project goes through :func:`validate` (for values it
builds) or :func:`decode` (for bytes it reads), so the contract cannot drift between the
simulator, the workers, the trainer and the DLQ tooling. See docs/contract.md.

JSON Schema checks shape and types; a few rules it cannot say are checked here as well:
numbers must be finite (Python's json accepts ``NaN`` and ``1e999``), string timestamps
must be RFC 3339 with a zone, strings must be encodable as UTF-8 (JSON's ``\ud800`` escape
gives a lone surrogate that Python cannot encode back), nesting is bounded, and the
configurable :class:`Bounds` (amount range, feature magnitudes, id lengths) hold. Every
problem has a low-cardinality reason class (:data:`REASONS`), the label of the dead-letter
metric and what the runbook is organised by.

Every record a worker reads is validated, so the schema check has a fast path: each schema is
also compiled to Python code by fastjsonschema (~3 us a transaction instead of jsonschema's
~50 us). A record that passes the compiled check is valid; one that fails it goes to
jsonschema, the reference, which decides and says why. Where the two could differ, the
reference wins, and a property test checks that the compiled check never accepts a record
the reference rejects.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema

from .json_structure import structure_problems

__all__ = [
    "KINDS",
    "REASONS",
    "Bounds",
    "DEFAULT_BOUNDS",
    "ContractError",
    "Decoded",
    "check",
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


#: Every reason class a record can be refused for, in the order a decoder meets them.
REASONS: tuple[str, ...] = (
    "empty", "oversize", "encoding", "malformed_json", "too_deep", "invalid_string",
    "non_finite", "schema", "out_of_bounds", "key_mismatch", "ts_skew", "processing_error",
)

#: How many bytes of an oversized payload a dead letter keeps (base64 makes it 4/3 larger).
DLQ_PAYLOAD_PREFIX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Bounds:
    """Value bounds of the contract beyond JSON Schema, configurable (docs/contract.md).

    ``max_amount`` defaults to 10 million in the card's currency: above any single card
    payment a risk team sees in the common currencies, far below where float arithmetic in
    running sums loses cents, and still wide enough for high-denomination currencies such as
    JPY or KRW at ordinary values. A team whose flows need more sets FRAUDSTREAM_MAX_AMOUNT.
    """

    max_amount: float = 10_000_000.0
    max_feature_abs: float = 1e9
    max_id_length: int = 128
    max_json_depth: int = 16

    @classmethod
    def from_settings(cls, settings: Any) -> "Bounds":
        return cls(float(settings.max_amount), float(settings.max_feature_abs),
                   int(settings.max_id_length), int(settings.max_json_depth))


DEFAULT_BOUNDS = Bounds()

# Id fields per kind, bounded by ``max_id_length``; numeric-map fields bounded by
# ``max_feature_abs``.
_ID_FIELDS = {
    "transactions": ("tx_id", "card_id", "terminal_id"),
    "labels": ("tx_id", "card_id"),
    "training-examples": ("tx_id", "card_id"),
    "synthetic-frauds": ("version",),
    "model-updates": ("version",),
}
_NUMBER_MAPS = {
    "transactions": ("features",),
    "synthetic-frauds": ("features",),
    "training-examples": ("features", "scores"),
}
_EPOCH_FIELDS = {"training-examples": ("event_ts", "label_ts")}


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
        try:
            ts = float(value)
        except OverflowError:  # a 400-digit integer
            ts = math.inf
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
            f"timestamp {_brief(value)} is outside 1970..2200 (epoch seconds expected, not milliseconds)"
        )
    return ts


def _bound_problems(kind: str, value: dict[str, Any], bounds: Bounds) -> list[tuple[str, str]]:
    """The configurable bounds; only fields the schema already typed are looked at."""
    problems: list[tuple[str, str]] = []
    for name in _ID_FIELDS.get(kind, ()):
        v = value.get(name)
        if isinstance(v, str) and len(v) > bounds.max_id_length:
            problems.append(("out_of_bounds", f"{name}: {len(v)} characters, over the "
                             f"{bounds.max_id_length}-character limit"))
    if kind == "transactions":
        amount = value.get("amount")
        if _is_number(amount) and amount > bounds.max_amount:
            problems.append(("out_of_bounds", f"amount: {_brief(amount)} is over the limit of "
                             f"{bounds.max_amount:g} (FRAUDSTREAM_MAX_AMOUNT)"))
    for name in _NUMBER_MAPS.get(kind, ()):
        numbers = value.get(name)
        if not isinstance(numbers, dict):
            continue
        for k, v in numbers.items():
            # abs() of a huge int stays an int (math.isfinite would overflow on 1e400 digits);
            # NaN compares false and is reported as non-finite already.
            if _is_number(v) and abs(v) > bounds.max_feature_abs:
                problems.append(("out_of_bounds", f"{name}.{k}: {_brief(v)} is beyond +-"
                                 f"{bounds.max_feature_abs:g} (FRAUDSTREAM_MAX_FEATURE_ABS)"))
                break  # one is enough to refuse; a huge map must not make a huge message
    for name in _EPOCH_FIELDS.get(kind, ()):
        v = value.get(name)
        if _is_number(v) and not 0 <= v < _TS_MAX:
            problems.append(("out_of_bounds", f"{name}: {_brief(v)} is outside 1970..2200 "
                             "(epoch seconds expected)"))
    return problems


def _brief(v: Any) -> str:
    """A number as an error message shows it: a 400-digit int must not make a 400-byte error."""
    text = repr(v)
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} digits)"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check(kind: str, value: Any, bounds: Bounds = DEFAULT_BOUNDS) -> list[tuple[str, str]]:
    """Every ``(reason class, message)`` for which ``value`` breaks the contract for ``kind``."""
    if not isinstance(value, dict):
        return [("schema", f"a {kind} record must be a JSON object, got {type(value).__name__}")]
    problems = structure_problems(value, bounds.max_json_depth)
    if any(reason == "too_deep" for reason, _ in problems):
        return problems  # the schema validators recurse too: keep them off such a record
    if not _passes_compiled_check(kind, value):
        for err in sorted(_validator(kind).iter_errors(value), key=lambda e: list(e.absolute_path)):
            field = ".".join(str(p) for p in err.absolute_path) or "record"
            problems.append(("schema", f"{field}: {_short(err)}"))
    for field in _TS_FIELDS.get(kind, ()):
        already_reported = any(m.startswith(field + " ") or m.startswith(field + ":")
                               for _, m in problems)
        if field in value and not already_reported:
            try:
                parse_ts(value[field])
            except ValueError as exc:
                problems.append(("schema", f"{field}: {exc}"))
    problems.extend(_bound_problems(kind, value, bounds))
    return problems


def validate(kind: str, value: Any, bounds: Bounds = DEFAULT_BOUNDS) -> list[str]:
    """Every reason ``value`` breaks the contract for ``kind``; an empty list means valid."""
    return [message for _, message in check(kind, value, bounds)]


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
    """Outcome of decoding one message: a valid ``value`` or an ``error`` a person can act on.

    ``reason`` is the error's class (one of :data:`REASONS`), ``None`` when valid.
    """

    value: dict[str, Any] | None
    error: str | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


#: One decoder for every record: ``json.loads`` with an argument builds a new one per call
#: (~1.4 us of its ~2.6).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def decode(kind: str, raw: bytes | None, max_bytes: int = 64 * 1024,
           bounds: Bounds = DEFAULT_BOUNDS) -> Decoded:
    """Bytes off the wire -> a contract-valid dict, or the reason it is not. Never raises."""
    if raw is None:
        return Decoded(None, "empty message (null value / tombstone)", "empty")
    if len(raw) > max_bytes:
        return Decoded(None, f"payload is {len(raw)} bytes, over the {max_bytes}-byte limit",
                       "oversize")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Decoded(None, f"payload is not UTF-8 (byte {exc.start}: "
                       f"{raw[exc.start:exc.start + 1]!r})", "encoding")
    if text.startswith("\ufeff"):  # json.loads's own check, which the decoder lacks
        return Decoded(None, "malformed JSON: the payload starts with a UTF-8 byte order mark "
                       "(send JSON without one)", "malformed_json")
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        return Decoded(None, f"malformed JSON: nested too deeply (the limit is "
                       f"{bounds.max_json_depth} levels)", "too_deep")
    except ValueError as exc:
        return Decoded(None, f"malformed JSON: {exc}", "malformed_json")
    problems = check(kind, value, bounds)
    if problems:
        return Decoded(None, _join(problems), _first_reason(problems))
    return Decoded(value, None)


def _first_reason(problems: list[tuple[str, str]]) -> str:
    found = {reason for reason, _ in problems}
    return next(r for r in REASONS if r in found)


def _join(problems: list[tuple[str, str]], limit: int = 20) -> str:
    """The messages, at most ``limit`` of them (a record with 10,000 bad keys has one line)."""
    text = "; ".join(message for _, message in problems[:limit])
    if len(problems) > limit:
        text += f"; and {len(problems) - limit} more"
    return text


def dead_letter(error: str, raw: bytes | None, topic: str, partition: int, offset: int,
                key: bytes | None, at: float,
                max_payload_bytes: int = DLQ_PAYLOAD_PREFIX_BYTES,
                reason: str | None = None) -> dict[str, Any]:
    """The DLQ record for a rejected message: reason, where it came from, the original bytes.

    A payload over ``max_payload_bytes`` keeps only that prefix, with ``payload_truncated``,
    the full length and the full payload's sha256 (to find it in the source topic): the dead
    letter must fit the producer's request limit whatever arrived. Keys and errors are capped
    the same way.
    """
    raw = raw or b""
    record: dict[str, Any] = {
        "error": error if len(error) <= 4096 else error[:4096] + " ...",
        "source": {
            "topic": topic,
            "partition": int(partition),
            "offset": int(offset),
            "key_b64": (base64.b64encode(key[:1024]).decode("ascii")
                        if key is not None else None),
        },
        "payload_b64": base64.b64encode(raw[:max_payload_bytes]).decode("ascii"),
        "at": at,
    }
    if reason is not None:
        record["reason"] = reason
    if len(raw) > max_payload_bytes:
        record["payload_truncated"] = True
        record["payload_bytes"] = len(raw)
        record["payload_sha256"] = hashlib.sha256(raw).hexdigest()
    if key is not None and len(key) > 1024:
        record["source"]["key_truncated"] = True
    return record

