"""Turning what users log into numbers, and numbers into request bodies.

Nothing here imports numpy or torch: their scalars are recognised by what
they can do (``.item()`` with ``.ndim == 0`` or ``.numel() == 1``).
"""

from __future__ import annotations

import json
import math
import numbers
import re
from typing import Any, List, Optional

MAX_NAME_BYTES = 256

DROP = object()  # "not a number we can store"


def to_number(v: Any) -> Any:
    """A float or int for ``v``, or DROP."""
    tv = type(v)
    if tv is float or tv is int:
        return v
    if tv is bool:
        return int(v)
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float):  # numpy.float64 and other float subclasses
        return float(v)
    if isinstance(v, int):  # IntEnum and other int subclasses
        return int(v)
    if isinstance(v, (str, bytes, bytearray, dict, list, tuple, set)) or v is None:
        return DROP
    item = getattr(v, "item", None)
    if item is not None and callable(item):
        if _is_single(v):
            try:
                x = item()
            except Exception:
                return DROP
            tx = type(x)
            if tx is float or tx is int:
                return x
            if tx is bool:
                return int(x)
            if isinstance(x, numbers.Real):
                try:
                    return float(x)
                except Exception:
                    return DROP
            return DROP
        return DROP
    # fractions.Fraction (Real), decimal.Decimal (a Number, not Complex).
    if isinstance(v, numbers.Real) or (isinstance(v, numbers.Number) and not isinstance(v, numbers.Complex)):
        try:
            return float(v)
        except Exception:
            return DROP
    return DROP


def _is_single(v: Any) -> bool:
    """True for 0-d arrays and tensors, numpy scalars, one-element tensors."""
    try:
        ndim = getattr(v, "ndim", None)
        if ndim == 0:
            return True
        numel = getattr(v, "numel", None)
        if numel is not None and callable(numel):
            return numel() == 1
        size = getattr(v, "size", None)
        if isinstance(size, int):
            return size == 1
    except Exception:
        return False
    return False


def name_problem(name: Any) -> Optional[str]:
    """Why the server would refuse ``name`` as a series name, or None."""
    if not isinstance(name, str):
        return "series names are strings, got %s" % type(name).__name__
    if not name:
        return "the series name is empty"
    if "\x00" in name:
        return "series names may not contain NUL"
    n = len(name.encode("utf-8", "surrogatepass"))
    if n > MAX_NAME_BYTES:
        return "the series name is %d bytes, over the limit of %d" % (n, MAX_NAME_BYTES)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "the series name is not valid Unicode"
    return None


# --- request bodies ---------------------------------------------------------
#
# Bodies are built as bytes with %-formatting, one C loop per chunk of a
# column: exact float formatting is most of the cost of a batch. Chunks of
# CHUNK values keep each C call (which holds the GIL) near a millisecond, so
# the training loop's thread is never kept waiting on a long batch, and keep
# the cached format strings small.

CHUNK = 2048
_NONFINITE = re.compile(rb"-?inf|nan")
_JSON_NONFINITE = {b"inf": b'"Infinity"', b"-inf": b'"-Infinity"', b"nan": b'"NaN"'}
_FMT_CACHE: dict = {}
_NS_CACHE: dict = {}
_INT_CACHE: dict = {}


def _cached(cache: dict, one: bytes, n: int) -> bytes:
    f = cache.get(n)
    if f is None:
        f = one * n
        if len(cache) < 256:
            cache[n] = f
    return f


def _fmt(n: int) -> bytes:
    return _cached(_FMT_CACHE, b"%.17g,", n)


def _chunked(fn, vals) -> bytes:
    n = len(vals)
    if n <= CHUNK:
        return fn(vals)
    return b"".join([fn(vals[i : i + CHUNK]) for i in range(0, n, CHUNK)])


def values_json(vals: List[Any]) -> bytes:
    """A JSON array of numbers, exactly: 17 significant digits round-trip
    every double; NaN and +-Inf as the API's strings."""
    return b"[" + values_csv(vals)[:-1] + b"]"


def values_csv(vals: List[Any]) -> bytes:
    """``values_json`` without its brackets and with a trailing comma, for a
    caller that joins the pieces of a body itself: every copy of a column
    saved counts when a batch is megabytes."""
    return _chunked(_values_chunk, vals)


def _values_chunk(vals) -> bytes:
    try:
        s = _fmt(len(vals)) % tuple(vals)
    except (OverflowError, TypeError, ValueError):
        return b",".join([_one(v) for v in vals]) + b","
    if b"n" in s:
        s = _NONFINITE.sub(lambda m: _JSON_NONFINITE[m.group(0)], s)
    return s


def _one(v: Any) -> bytes:
    try:
        s = b"%.17g" % v
    except (OverflowError, TypeError, ValueError):
        # An int past the double range: what a double makes of it.
        try:
            s = b"inf" if v > 0 else b"-inf"
        except Exception:
            s = b"nan"
    return _JSON_NONFINITE.get(s, s)


def _steps_chunk(steps) -> bytes:
    return _cached(_INT_CACHE, b"%d,", len(steps)) % tuple(steps)


def _times_chunk(times_ns) -> bytes:
    return _cached(_NS_CACHE, b"%de-9,", len(times_ns)) % tuple(times_ns)


def steps_json(steps: List[int]) -> bytes:
    return b"[" + _chunked(_steps_chunk, steps)[:-1] + b"]"


def times_json(times_ns: List[int]) -> bytes:
    """Unix nanoseconds as Unix seconds: ``1732000000123456789e-9`` is a JSON
    number, and formatting an int is 5x cheaper than formatting a float."""
    return b"[" + _chunked(_times_chunk, times_ns)[:-1] + b"]"


def name_json(name: str) -> bytes:
    return json.dumps(name, ensure_ascii=False).encode("utf-8", "replace")


def jsonable(v: Any, depth: int = 0) -> Any:
    """A JSON-encodable copy of a config value: numpy/torch scalars become
    numbers, NaN/Inf become the strings "NaN"/"Infinity"/"-Infinity", other
    objects their str()."""
    if depth > 32:
        return str(v)
    tv = type(v)
    if v is None or tv is str or tv is bool or tv is int:
        return v
    if tv is float:
        if math.isfinite(v):
            return v
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, dict) or hasattr(v, "items") and callable(getattr(v, "items")):
        try:
            return {str(k): jsonable(x, depth + 1) for k, x in v.items()}
        except Exception:
            return str(v)
    if isinstance(v, (list, tuple, set, frozenset)):
        return [jsonable(x, depth + 1) for x in v]
    if isinstance(v, (bool, int)):
        return int(v) if not isinstance(v, bool) else bool(v)
    if isinstance(v, float):
        return jsonable(float(v), depth + 1)
    if isinstance(v, str):
        return str(v)
    if hasattr(v, "item") and _is_single(v):
        try:
            return jsonable(v.item(), depth + 1)
        except Exception:
            return str(v)
    if hasattr(v, "tolist"):
        try:
            return jsonable(v.tolist(), depth + 1)
        except Exception:
            return str(v)
    if hasattr(v, "__dict__") and type(v).__module__ == "argparse":
        return jsonable(vars(v), depth + 1)
    return str(v)


def config_dict(config: Any) -> dict:
    """A config given to init or update(): a mapping, an argparse.Namespace,
    or any object with attributes (absl flags, dataclasses)."""
    if config is None:
        return {}
    if isinstance(config, dict) or (hasattr(config, "items") and callable(getattr(config, "items"))):
        return jsonable(dict(config.items()))
    try:
        import dataclasses

        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            return jsonable(dataclasses.asdict(config))
    except Exception:
        pass
    if hasattr(config, "__dict__"):
        return jsonable({k: v for k, v in vars(config).items() if not k.startswith("_")})
    raise TypeError("config must be a mapping or an object with attributes, got %s" % type(config).__name__)


def deep_merge(dst: dict, src: dict) -> None:
    """The server's merge: objects key by key, anything else replaces."""
    for k, v in src.items():
        cur = dst.get(k)
        if isinstance(cur, dict) and isinstance(v, dict):
            deep_merge(cur, v)
        else:
            dst[k] = v


def truncate_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, on a character boundary."""
    if len(text) * 4 <= max_bytes:
        return text
    b = text.encode("utf-8", "replace")
    if len(b) <= max_bytes:
        return text
    return b[:max_bytes].decode("utf-8", "ignore")
