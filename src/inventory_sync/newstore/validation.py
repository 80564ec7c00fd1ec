"""A webhook body, read: a handled event, an event we do not handle, or the reason it is refused.

The usual body is read in one pass: pydantic parses and validates it straight from the bytes,
the event's `name` choosing the payload model. Anything else (an unhandled name, invalid input,
JSON that only Python's parser reads: another encoding, lone surrogates) takes the careful
path, which parses with `json` and words the refusal. Either way the same models decide.

PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded for storage. Neither can
reach a model from the one-pass parser unless the body holds a `\\u0000` escape, so the walk
that finds them runs only for such bodies and on the careful path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

from pydantic import AliasChoices, BaseModel, ValidationError
from pydantic_core import ErrorDetails

from inventory_sync.newstore.payloads import (
    HANDLED,
    HANDLED_EVENT,
    MAX_CHUNKS,
    MAX_LOGICAL_TIMESTAMP,
    MAX_TEXT,
    PAYLOAD_MODELS,
    SALE,
    Envelope,
    HandledEvent,
    ItemsCompleted,
)

Key = tuple[str, str, str, int]
"""The dedupe key: (tenant, name, payload.id, chunk_number), or for a sale
(tenant, name, payload.id, logical_timestamp): one fulfillment request completes in several
events, one per logical timestamp, and none of them is chunked."""


def key_of(event: HandledEvent) -> Key:
    """The dedupe key of a validated event."""
    payload = event.payload
    if isinstance(payload, ItemsCompleted):
        return (event.tenant, event.name, payload.id, payload.logical_timestamp)
    return (event.tenant, event.name, payload.id, payload.chunk_number)


def chunk_of(key: Key) -> int | None:
    """The chunk number in a key; None for a sale, which is never chunked."""
    return None if key[1] == SALE else key[3]


def key_text(key: Key) -> str:
    """The key as `json.dumps(list(key), ensure_ascii=False)` writes it, which inbox slots and
    ERP message ids are hashes of (so it never changes), built without the encoder's overhead."""
    tenant, name, payload_id, chunk = key
    parts = (encode_basestring(tenant), encode_basestring(name), encode_basestring(payload_id))
    return f"[{parts[0]}, {parts[1]}, {parts[2]}, {chunk}]"


@dataclass(frozen=True, slots=True)
class Handled:
    event: HandledEvent


@dataclass(frozen=True, slots=True)
class Unhandled:
    envelope: Envelope
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str
    document: dict[str, Any] | None = None
    """The parsed body, when it was a JSON object: its dedupe key may still be readable."""
    envelope: Envelope | None = None
    """The envelope, when it was valid."""


Read = Handled | Unhandled | Refused


def read(body: bytes) -> Read:
    try:
        event = HANDLED_EVENT.validate_json(body)
    except ValidationError:
        return _careful(body)
    if b"NaN" in body or b"Infinity" in body:
        return _careful(body)  # the one-pass parser takes them, and skips unknown fields
    if b"\\u0000" in body and _unstorable(event) is not None:
        return _careful(body)  # which words the refusal and keeps what it can read
    return Handled(event)


class _Constant(float):
    """NaN, Infinity or -Infinity as the body wrote it: Python's parser takes them, JSON has no
    such value, no backend can store one and no ERP would read one."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> _Constant:
        constant = super().__new__(cls, text)
        constant.text = text
        return constant


def _parse(body: bytes) -> Any:
    return json.loads(body, parse_constant=_Constant)


def _constant(document: dict[str, Any]) -> str | None:
    """Where the body's first NaN or Infinity is, as the refusal's reason. Iterative: the body
    may be nested as deeply as the parser allowed."""
    pending: list[tuple[str, Any]] = [("", document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, _Constant):
            return f"{path}: {value.text} is not a JSON value"
        if isinstance(value, dict | list):
            children = value.items() if isinstance(value, dict) else enumerate(value)
            prefix = f"{path}." if path else ""
            pending.extend(reversed([(f"{prefix}{key}", item) for key, item in children]))
    return None


def _careful(body: bytes) -> Read:
    try:
        document = _parse(body)
    except (UnicodeDecodeError, ValueError) as error:
        return Refused(f"body is not valid JSON: {error}")
    except RecursionError:
        return Refused("body is not valid JSON: nested too deeply")
    if not isinstance(document, dict):
        return Refused("body must be a JSON object with tenant, name and payload")
    try:
        envelope = Envelope.model_validate(document)
    except ValidationError as error:
        return Refused(describe(error), document)
    unstorable = _unstorable(envelope, skip=("payload",))
    if unstorable is not None:
        return Refused(unstorable, document)
    if envelope.name not in HANDLED:
        return Unhandled(envelope, document)
    try:
        event = HANDLED_EVENT.validate_python(document)
    except ValidationError as error:
        return Refused(describe(error), document, envelope)
    problem = _unstorable(event) or _constant(document)
    return Handled(event) if problem is None else Refused(problem, document, envelope)


# -- text that cannot be stored -----------------------------------------------------------------


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string of a validated value, keys of free-form objects included, with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _strings(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _strings(item, f"{path}.{n}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key, path)
            yield from _strings(item, path)


def _unstorable(model: BaseModel, skip: tuple[str, ...] = ()) -> str | None:
    """`path: reason` for the first string of `model` that cannot be stored, if any."""
    for name in type(model).model_fields:
        if name in skip:
            continue
        for path, text in _strings(getattr(model, name), name):
            if "\x00" in text:
                return f"{path}: NUL characters are not allowed"
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return f"{path}: invalid unicode (lone surrogate)"
    return None


# -- the dedupe key of a body that is refused -----------------------------------------------------


def lenient_key(document: dict[str, Any]) -> Key | None:
    """The dedupe key, when the body has one, even if the rest of it is invalid."""
    tenant, name, payload = document.get("tenant"), document.get("name"), document.get("payload")
    if not (isinstance(tenant, str) and isinstance(name, str) and isinstance(payload, dict)):
        return None
    payload_id = payload.get("id")
    if isinstance(payload_id, int) and not isinstance(payload_id, bool):
        payload_id = str(payload_id)
    if name == SALE:
        # No default: without its logical timestamp a sale's key is unknown.
        chunk, low, high = payload.get("logical_timestamp"), 0, MAX_LOGICAL_TIMESTAMP
    else:
        chunk, low, high = payload.get("chunk_number", 1), 1, MAX_CHUNKS
        if chunk is None:
            chunk = 1
    if isinstance(chunk, float) and chunk.is_integer():
        chunk = int(chunk)
    if not (isinstance(payload_id, str) and payload_id and type(chunk) is int):
        return None
    if not low <= chunk <= high:
        return None  # out of range: the model names the problem, and it fits no column
    if any(len(part) > MAX_TEXT for part in (tenant, name, payload_id)):
        return None  # too long to be an id; the body is kept under the hash of its bytes
    key = (tenant, name, payload_id, chunk)
    try:
        json.dumps(key).encode()
        "".join(key[:3]).encode("utf-8")
    except (UnicodeEncodeError, ValueError):
        return None
    if any("\x00" in part for part in key[:3]):
        return None
    return key


def lenient_location(document: dict[str, Any]) -> str | None:
    """The store a handled event names, read under the same field names as its model reads it,
    even if the rest of the body is invalid: reconciliation counts quarantined events per store."""
    name, payload = document.get("name"), document.get("payload")
    model = PAYLOAD_MODELS.get(name) if isinstance(name, str) else None
    if model is None or not isinstance(payload, dict):
        return None
    aliases = model.model_fields["location_id"].validation_alias
    assert isinstance(aliases, AliasChoices)
    for alias in aliases.choices:
        value = payload.get(alias)
        if isinstance(value, str) and 0 < len(value) <= MAX_TEXT and "\x00" not in value:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                continue
            return value
    return None


# -- content ------------------------------------------------------------------------------------


def canonical_payload(body: bytes) -> str | None:
    """The body's payload as canonical JSON (sorted keys, no spaces, ASCII), or None when the
    body is not a JSON object. Two bodies with the same payload have the same content, however
    their bytes or their envelopes differ."""
    try:
        document = _parse(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    try:
        return json.dumps(
            document.get("payload"), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        )
    except (ValueError, RecursionError):
        return None


def payload_hash(canonical: str) -> str:
    """The hash of a canonical payload (`canonical_payload`): what a purged body leaves in its
    event's `content_hash` (`storage.retention`), and what intake compares a redelivery with
    (`intake.service`). One definition, since the two must always agree."""
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- the reason of a refusal ----------------------------------------------------------------------


def describe(error: ValidationError, limit: int = 5) -> str:
    """One `path: reason` per field in error, for the quarantine record.

    A number field is a union (`payloads._whole_number`) whose every branch reports when all
    fail: the branch that words the bound is kept, or else a plain "expected a whole number".
    """
    by_path: dict[str, list[ErrorDetails]] = {}
    for item in error.errors(include_url=False):
        loc = item["loc"]
        if loc and loc[0] in HANDLED:
            loc = loc[1:]  # the tag of the event union
        path = ".".join(str(p) for p in loc if not _is_branch(p))
        by_path.setdefault(path or "body", []).append(item)
    parts = [f"{path}: {_reason(items)}" for path, items in list(by_path.items())[:limit]]
    extra = len(by_path) - limit
    if extra > 0:
        parts.append(f"(and {extra} more)")
    return "; ".join(parts)


def _is_branch(part: str | int) -> bool:
    """A union branch's label in an error location (`payloads._whole_number`, `_text`)."""
    return isinstance(part, str) and part.startswith(("whole:", "text:"))


def _reason(items: list[ErrorDetails]) -> str:
    """The reason for one field. A union reports an error per branch: a branch that words the
    problem (a `ValueError` of ours) wins; else the text branch of a text field, or "a whole
    number" for a number field, whose branches differ only in the type they take."""
    worded = [i for i in items if i["type"] == "value_error"]
    if worded:
        return str(worded[0]["msg"]).removeprefix("Value error, ")
    by_branch = {i["loc"][-1]: i for i in items}
    first = by_branch.get("text:str", items[0])
    if "whole:int" in by_branch:
        if isinstance(first.get("input"), bool):
            return "expected a whole number, not a boolean"
        return "expected a whole number"
    if first["type"] == "string_too_long":
        return f"longer than {MAX_TEXT} characters"
    if first["type"] == "string_unicode":
        return "invalid unicode (lone surrogate)"
    return str(first["msg"])
