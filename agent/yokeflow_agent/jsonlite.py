"""JSON for the hook process, without importing `json`.

A hook is a process per tool call, and `import json` costs it about as much as Python's own
start: `json.decoder` imports `re`, which imports `enum`, `functools` and `collections`. The C
accelerator underneath, `_json`, needs none of them; `loads` and `dumps` here drive it exactly
as `json.loads` and `json.dumps` do with their defaults (`ensure_ascii`, `", "` and `": "`,
circular references refused, NaN allowed), which a unit test holds them to. Anything else
(indentation, an interpreter without `_json`) is handed to `json` itself.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported either: it costs the hook milliseconds
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

try:
    import _json
except ImportError:  # an interpreter without the accelerator: plain `json`
    _json = None  # type: ignore[assignment]

__all__ = ["dumps", "loads"]

_WHITESPACE = " \t\n\r"  # JSON's, exactly
_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _Decoding:
    """The attributes `_json.make_scanner` reads from a `json.JSONDecoder`, at its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


# The stub types the context as a scanner; at run time it is any object with these attributes.
_scan = _json.make_scanner(_Decoding()) if _json else None  # type: ignore[arg-type]


def loads(text: str | bytes | bytearray) -> Any:
    """`json.loads(text)`; a ValueError (json's JSONDecodeError among them) when it is not
    one JSON value."""
    if _scan is None:
        import json

        return json.loads(text)
    if not isinstance(text, str):
        text = bytes(text).decode("utf-8")
    text = text.strip(_WHITESPACE)
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        raise ValueError("Expecting value: line 1 column 1 (char 0)") from None
    if end != len(text):
        raise ValueError(f"Extra data: char {end}")
    return value


def _refuse(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(
    value: Any,
    *,
    default: Callable[[Any], Any] | None = None,
    sort_keys: bool = False,
    indent: int | None = None,
) -> str:
    """`json.dumps(value, default=default, sort_keys=sort_keys, indent=indent)`."""
    if indent is not None or _scan is None:
        import json

        return json.dumps(value, default=default, sort_keys=sort_keys, indent=indent)
    if isinstance(value, str):
        return str(_json.encode_basestring_ascii(value))
    encode = _json.make_encoder(
        {},
        default or _refuse,
        _json.encode_basestring_ascii,
        None,
        ": ",
        ", ",
        sort_keys,
        False,
        True,
    )
    return "".join(encode(value, 0))
