"""Serial framing: one message per line, ``@<payload>#<crc32 hex>\\n``.

The ``@`` start mark and the CRC32 (IEEE, as ``binascii.crc32``, 8 lowercase
hex digits) let the host drop line noise, REPL chatter and torn lines. The
decoder never raises on input: it returns the good payloads and keeps a
bounded record of what it skipped and why.
"""

from binascii import crc32

from protocol import limits

START = b"@"
SEP = b"#"
END = b"\n"
MAX_SKIPPED = 32  # skipped records kept for inspection; counts are unbounded


def encode_frame(payload: bytes) -> bytes:
    """Frame one message for the serial line."""
    if b"\n" in payload or b"\r" in payload:
        raise ValueError("payload holds a line break")
    if len(payload) + 10 > limits.MAX_LINE:
        raise ValueError("payload too long for one line")
    return START + payload + SEP + (b"%08x" % (crc32(payload) & 0xFFFFFFFF)) + END


def check_line(line: bytes) -> "tuple[bytes | None, str]":
    """Return ``(payload, "")`` for a good line, else ``(None, reason)``."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line:
        return None, "empty"
    if line[:1] != START:
        return None, "no_start"
    cut = line.rfind(SEP)
    if cut < 0 or len(line) - cut - 1 != 8:
        return None, "no_crc"
    payload = line[1:cut]
    try:
        want = int(line[cut + 1 :], 16)
    except ValueError:
        return None, "no_crc"
    if crc32(payload) & 0xFFFFFFFF != want:
        return None, "bad_crc"
    return payload, ""


class FrameDecoder:
    """Incremental line decoder; ``feed`` bytes as they arrive.

    ``counts`` maps skip reasons (``empty``, ``no_start``, ``no_crc``,
    ``bad_crc``, ``oversize``) to how many lines were dropped; ``skipped``
    holds the last ``MAX_SKIPPED`` as ``(reason, raw_bytes)``.
    """

    def __init__(self, max_line: int = limits.MAX_LINE) -> None:
        self._buf = b""
        self._max = max_line
        self._discarding = False  # inside an oversize line: drop to next newline
        self.counts: "dict[str, int]" = {}
        self.skipped: "list[tuple[str, bytes]]" = []
        self.frames = 0

    def _skip(self, reason: str, raw: bytes) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self.skipped.append((reason, raw[:64]))
        if len(self.skipped) > MAX_SKIPPED:
            self.skipped.pop(0)

    def feed(self, data: bytes) -> "list[bytes]":
        """Add received bytes; return the payloads of every complete good line."""
        out: "list[bytes]" = []
        buf = self._buf + bytes(data)
        while True:
            nl = buf.find(END)
            if nl < 0:
                break
            line = buf[:nl]
            buf = buf[nl + 1 :]
            if self._discarding:
                self._discarding = False
                continue
            if len(line) > self._max:
                self._skip("oversize", line)
                continue
            payload, reason = check_line(line)
            if payload is None:
                if reason != "empty":
                    self._skip(reason, line)
                else:
                    self.counts["empty"] = self.counts.get("empty", 0) + 1
            else:
                self.frames += 1
                out.append(payload)
        if len(buf) > self._max:
            self._skip("oversize", buf)
            buf = b""
            self._discarding = True
        self._buf = buf
        return out

    def skipped_total(self) -> int:
        """How many lines were dropped (empty lines included)."""
        n = 0
        for k in self.counts:
            n += self.counts[k]
        return n
