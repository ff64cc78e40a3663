"""Canonical compact JSON: one byte string for one value, on both interpreters.

Hand-written because MicroPython's ``json.dumps`` neither sorts keys (its
dicts are unordered) nor escapes like CPython's, and signatures cover exact
bytes. Only the types the protocol uses are accepted: dict with str keys,
list/tuple, str, int (not bool), bool, None. Keys are sorted; strings are
UTF-8 with ``"``, ``\\`` and control characters escaped.
"""

from protocol.errors import ProtocolError

_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _plain(s: str) -> bool:
    for ch in s:
        if ch in _ESC or ord(ch) < 0x20 or ord(ch) == 0x7F:
            return False
    return True


def _str(s: str, out: list) -> None:  # type: ignore[type-arg]
    if _plain(s):
        # the usual case, whole: one entry per character would grow ``out`` by thousands of
        # entries for a long string (a firmware chunk's 684 base64 characters: a list of ~8 KB)
        out.append('"')
        out.append(s)
        out.append('"')
        return
    out.append('"')
    for ch in s:
        e = _ESC.get(ch)
        if e is not None:
            out.append(e)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')


def _value(v: object, out: list) -> None:  # type: ignore[type-arg]
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(str(v))
    elif isinstance(v, str):
        _str(v, out)
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _value(item, out)
        out.append("]")
    elif isinstance(v, dict):
        out.append("{")
        for i, k in enumerate(sorted(v)):
            if not isinstance(k, str):
                raise ProtocolError("bad_type", "object key %r is not a string" % (k,))
            if i:
                out.append(",")
            _str(k, out)
            out.append(":")
            _value(v[k], out)
        out.append("}")
    else:
        raise ProtocolError("bad_type", "cannot encode %s" % type(v).__name__)


def dumps(v: object) -> bytes:
    """Encode ``v`` as canonical compact JSON bytes."""
    out: list = []  # type: ignore[type-arg]
    _value(v, out)
    return "".join(out).encode()
