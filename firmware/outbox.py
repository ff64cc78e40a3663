"""The outbox: every event saved on littlefs before feedback, kept until acked.

Layout under ``root`` (one directory each, so churn in one metadata pair does
not rewrite the others):

- ``boot``: the boot counter and the boot floor (CRC-checked, written to a
  temp name then renamed, so a cut leaves the old or the new value);
- ``j/<b>_<s>``: the *journal*: one small file per event not yet in a
  segment. A record is ~50 bytes, under littlefs's inline limit, so saving it
  is one metadata commit (no data block, no erase); the file is complete when
  ``save`` returns, and that is when feedback is given;
- ``s/<b><s>``: *segments*: when the journal holds ``seg_records`` events,
  they are packed (magic, count, records, CRC32) into ``s/<name>.tmp``,
  renamed to ``s/<name>``, and only then their journal files are deleted;
  a segment is deleted when every record in it is acked;
- ``q/``: quarantine: a segment or journal file that fails its CRC is
  renamed here and reported; the box carries on.

After a cut between the rename and the journal deletes, an event is in both
places: loading keeps one copy by identity and deletes the journal file.
Acks of records inside a segment are held in RAM; after a restart those
records are sent again and the collector, which ignores repeats, acks them
again.
"""

import os
import struct
from binascii import crc32

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

TYPES = ("press", "signin", "signout", "invite", "unrated")
_HDR = "<BIIqqBBBi"  # type, b, s, ts (-1 = null), up, k, n, f, i (-1 = null)
_HDR_SIZE = struct.calcsize(_HDR)
_SEG_MAGIC = b"EBS1"
_BOOT_FMT = "<III"  # boot, floor, crc


class OutboxError(Exception):
    """Root error of the outbox."""


class OutboxFull(OutboxError):
    """The outbox holds ``capacity`` unacked events (or the flash is full)."""


class CorruptRecord(OutboxError):
    """A record or segment failed its length or CRC check."""


def _crc(b: bytes) -> int:
    return int(crc32(b)) & 0xFFFFFFFF


def pack(ev: "dict[str, Any]") -> bytes:
    """Encode one event compactly (header, officer, ticket, CRC32)."""
    o = (ev.get("o") or "").encode()
    tk = (ev.get("tk") or "").encode()
    ts = ev.get("ts")
    i = ev.get("i")
    body = (
        struct.pack(
            _HDR,
            TYPES.index(ev["t"]),
            ev["b"],
            ev["s"],
            -1 if ts is None else ts,
            ev["up"],
            ev.get("k") or 0,
            ev.get("n") or 0,
            ev.get("f") or 0,
            -1 if i is None else i,
        )
        + bytes((len(o),))
        + o
        + bytes((len(tk),))
        + tk
    )
    return body + struct.pack("<I", _crc(body))


def unpack(buf: bytes) -> "dict[str, Any]":
    """Decode a record written by ``pack``; raise ``CorruptRecord`` if damaged."""
    if len(buf) < _HDR_SIZE + 6:
        raise CorruptRecord("short record (%d bytes)" % len(buf))
    body = buf[:-4]
    if struct.unpack("<I", buf[-4:])[0] != _crc(body):
        raise CorruptRecord("record CRC mismatch")
    t, b, s, ts, up, k, n, f, i = struct.unpack(_HDR, body[:_HDR_SIZE])
    p = _HDR_SIZE
    lo = body[p]
    o = body[p + 1 : p + 1 + lo].decode()
    p += 1 + lo
    lt = body[p]
    tk = body[p + 1 : p + 1 + lt].decode()
    if p + 1 + lt != len(body) or t >= len(TYPES):
        raise CorruptRecord("record length mismatch")
    ev = {"t": TYPES[t], "b": b, "s": s, "ts": None if ts < 0 else ts, "up": up, "o": o or None}
    if TYPES[t] == "press":
        ev["k"] = k
        ev["n"] = n
        ev["f"] = f
    if TYPES[t] in ("press", "invite", "unrated"):
        ev["i"] = None if i < 0 else i
        ev["tk"] = tk or None
    return ev


def message_fields(ev: "dict[str, Any]") -> "dict[str, Any]":
    """The protocol fields of an event (everything but ``t``)."""
    out = {}
    for k in ev:
        if k != "t":
            out[k] = ev[k]
    return out


def read_file(path: str) -> "bytes | None":
    try:
        with open(path, "rb") as f:
            data: bytes = f.read()
            return data
    except OSError:
        return None


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a cut leaves the old or the new file."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _mkdir(path: str) -> None:
    try:
        os.mkdir(path)
    except OSError:
        pass


class Segment:
    """A packed group of records on flash; RAM holds only identities."""

    def __init__(self, name: str, ids: "list[tuple[int, int]]") -> None:
        self.name = name
        self.ids = ids
        self.acked: "set[tuple[int, int]]" = set()


def pack_segment(recs: "list[bytes]") -> bytes:
    parts = [_SEG_MAGIC, struct.pack("<H", len(recs))]
    for r in recs:
        parts.append(bytes((len(r),)))
        parts.append(r)
    body = b"".join(parts)
    return body + struct.pack("<I", _crc(body))


def unpack_segment(buf: bytes) -> "list[dict[str, Any]]":
    if len(buf) < 10 or buf[:4] != _SEG_MAGIC:
        raise CorruptRecord("segment header damaged")
    body = buf[:-4]
    if struct.unpack("<I", buf[-4:])[0] != _crc(body):
        raise CorruptRecord("segment CRC mismatch")
    n = struct.unpack("<H", body[4:6])[0]
    p = 6
    out = []
    for _ in range(n):
        ln = body[p]
        out.append(unpack(body[p + 1 : p + 1 + ln]))
        p += 1 + ln
    if p != len(body):
        raise CorruptRecord("segment length mismatch")
    return out


class Outbox:
    """Events saved on flash until the collector's signed ack names them.

    ``open()`` loads what is on flash and bumps the persisted boot counter;
    ``save(ev)`` assigns the identity ``(boot, seq)`` and makes the event
    durable before it returns; ``ack(b, s)`` forgets one; ``pending()``
    yields unacked events oldest first; ``maintain()`` packs a full journal
    into a segment (call it after feedback, off the press path).
    """

    def __init__(self, root: str, capacity: int = 2000, seg_records: int = 32) -> None:
        self.root = root
        self.capacity = capacity
        self.seg_records = seg_records
        self.boot = 0
        self.floor = 0
        self.seq = 0
        self.journal: "list[dict[str, Any]]" = []
        self.segments: "list[Segment]" = []
        self.depth = 0
        self.quarantined = 0
        self.problems: "list[str]" = []  # last few reported problems, newest last

    # ---- start-up ----

    def open(self) -> int:
        """Load the outbox, bump and persist the boot counter; return it."""
        _mkdir(self.root)
        for sub in ("/j", "/s", "/q"):
            _mkdir(self.root + sub)
        old, floor = self._read_boot()
        self.floor = floor
        self._set_boot(max(old + 1, floor))
        self._load_segments()
        self._load_journal()
        return self.boot

    def _read_boot(self) -> "tuple[int, int]":
        raw = read_file(self.root + "/boot")
        if raw is None:
            return 0, 0
        if len(raw) == 12:
            b, f, c = struct.unpack(_BOOT_FMT, raw)
            if c == _crc(raw[:8]):
                return b, f
        self._problem("boot counter damaged")
        return 0, 0

    def _write_boot(self, boot: int) -> None:
        body = struct.pack("<II", boot, self.floor)
        write_atomic(self.root + "/boot", body + struct.pack("<I", _crc(body)))

    def _set_boot(self, boot: int) -> None:
        """Start a new boot number: persisted before any event uses it; seq restarts."""
        self._write_boot(boot)
        self.boot = boot
        self.seq = 0

    def raise_floor(self, bf: int) -> bool:
        """Apply the collector's boot floor; True when the boot number moved up."""
        if bf <= self.floor and bf <= self.boot:
            return False
        self.floor = max(self.floor, bf)
        if bf > self.boot:
            self._set_boot(bf)
            return True
        self._write_boot(self.boot)  # only the floor moved: keep this boot's seq running
        return False

    def _problem(self, what: str) -> None:
        self.problems.append(what)
        if len(self.problems) > 8:
            self.problems.pop(0)

    def _quarantine(self, path: str, name: str, why: str) -> None:
        self.quarantined += 1
        self._problem("quarantined %s: %s" % (name, why))
        try:
            os.rename(path, self.root + "/q/" + name)
        except OSError:
            _remove(path)

    def _load_segments(self) -> None:
        d = self.root + "/s"
        names = sorted(os.listdir(d))
        for name in names:
            path = d + "/" + name
            if name.endswith(".tmp"):
                _remove(path)  # packing was cut; the journal still holds them
                continue
            try:
                recs = unpack_segment(read_file(path) or b"")
            except CorruptRecord as exc:
                self._quarantine(path, name, str(exc))
                continue
            ids = [(r["b"], r["s"]) for r in recs]
            self.segments.append(Segment(name, ids))
            self.depth += len(ids)

    def _in_segments(self, key: "tuple[int, int]") -> bool:
        for seg in self.segments:
            if key in seg.ids:
                return True
        return False

    def _load_journal(self) -> None:
        d = self.root + "/j"
        recs = []
        for name in os.listdir(d):
            path = d + "/" + name
            raw = read_file(path) or b""
            try:
                ev = unpack(raw)
            except CorruptRecord as exc:
                if raw:
                    self._quarantine(path, name, str(exc))
                else:
                    _remove(path)  # created, never written: its save did not return
                continue
            if self._in_segments((ev["b"], ev["s"])):
                _remove(path)  # packed into a segment just before a cut
                continue
            recs.append(ev)
        recs.sort(key=lambda e: (e["b"], e["s"]))
        self.journal = recs
        self.depth += len(recs)

    # ---- running ----

    @property
    def full(self) -> bool:
        return self.depth >= self.capacity

    def save(self, ev: "dict[str, Any]") -> "tuple[int, int]":
        """Assign the identity, write the event durably, return ``(boot, seq)``."""
        if self.depth >= self.capacity:
            raise OutboxFull("outbox full: %d unacked events" % self.depth)
        ev["b"] = self.boot
        ev["s"] = self.seq
        path = "%s/j/%x_%x" % (self.root, self.boot, self.seq)
        data = pack(ev)
        try:
            with open(path, "wb") as f:
                f.write(data)
        except OSError as exc:
            _remove(path)
            self._problem("flash write failed: %s" % exc)
            raise OutboxFull("flash write failed: %s" % exc)
        self.seq += 1
        self.journal.append(ev)
        self.depth += 1
        return ev["b"], ev["s"]

    def maintain(self) -> bool:
        """Pack a full journal into a segment; True when one was written."""
        if len(self.journal) < self.seg_records:
            return False
        recs = self.journal[: self.seg_records]
        first = recs[0]
        name = "%08x%08x" % (first["b"], first["s"])
        path = self.root + "/s/" + name
        try:
            write_atomic(path, pack_segment([pack(r) for r in recs]))
        except OSError as exc:
            _remove(path + ".tmp")
            self._problem("segment write failed: %s" % exc)
            return False
        self.segments.append(Segment(name, [(r["b"], r["s"]) for r in recs]))
        for r in recs:
            _remove("%s/j/%x_%x" % (self.root, r["b"], r["s"]))
        self.journal = self.journal[self.seg_records :]
        return True

    def ack(self, b: int, s: int) -> bool:
        """Forget event ``(b, s)``; False when the outbox does not hold it."""
        j = self.journal
        for n in range(len(j)):
            ev = j[n]
            if ev["s"] == s and ev["b"] == b:
                _remove("%s/j/%x_%x" % (self.root, b, s))
                j.pop(n)
                self.depth -= 1
                return True
        key = (b, s)
        for n in range(len(self.segments)):
            seg = self.segments[n]
            if key in seg.ids and key not in seg.acked:
                seg.acked.add(key)
                self.depth -= 1
                if len(seg.acked) == len(seg.ids):
                    _remove(self.root + "/s/" + seg.name)
                    self.segments.pop(n)
                return True
        return False

    def ack_range(self, b: int, lo: int, hi: int) -> "list[tuple[int, int]]":
        """Forget every held event of boot ``b`` with ``lo <= seq <= hi``; return their ids."""
        done = []
        keep = []
        for ev in self.journal:
            if ev["b"] == b and lo <= ev["s"] <= hi:
                _remove("%s/j/%x_%x" % (self.root, b, ev["s"]))
                done.append((b, ev["s"]))
            else:
                keep.append(ev)
        if done:
            self.journal = keep
        for seg in list(self.segments):
            for key in seg.ids:
                if key[0] == b and lo <= key[1] <= hi and key not in seg.acked:
                    seg.acked.add(key)
                    done.append(key)
            if len(seg.acked) == len(seg.ids):
                _remove(self.root + "/s/" + seg.name)
                self.segments.remove(seg)
        self.depth -= len(done)
        return done

    def _read_segment(self, seg: Segment) -> "list[dict[str, Any]] | None":
        if seg not in self.segments:
            return None  # fully acked (and deleted) while the caller was iterating
        path = self.root + "/s/" + seg.name
        raw = read_file(path)
        try:
            if raw is None:
                raise CorruptRecord("segment file missing")
            return unpack_segment(raw)
        except CorruptRecord as exc:
            # damaged after it was loaded: keep working, report, drop its count
            self.segments.remove(seg)
            self.depth -= len(seg.ids) - len(seg.acked)
            if raw is None:
                self._problem("lost segment %s: %s" % (seg.name, exc))
            else:
                self._quarantine(path, seg.name, str(exc))
            return None

    def pending(self) -> "Any":
        """Yield unacked events, oldest first (segments, then the journal)."""
        for seg in list(self.segments):
            recs = self._read_segment(seg)
            if recs is None:
                continue
            for ev in recs:
                if (ev["b"], ev["s"]) not in seg.acked:
                    yield ev
        for ev in list(self.journal):
            if ev in self.journal:  # not acked while the caller was iterating
                yield ev
