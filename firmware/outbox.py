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
  the oldest are streamed one record at a time (magic, count, records,
  CRC32) into ``s/<name>.tmp``, renamed to ``s/<name>``, and only then their
  journal files are deleted; a segment is deleted when every record in it
  is acked;
- ``q/``: quarantine: a segment or journal file that fails its CRC is
  renamed here and reported; the box carries on.

Memory: RAM does not grow with the outbox depth. It holds counters (depth,
journal files, segments) and one fixed table allocated at ``open``: per
segment its first and last identity, its record count, how many are acked
and an acked bitmask (26 bytes; ``capacity // seg_records + 16`` slots, at
most 128, or as many as the flash holds at boot), plus the journal's
identities while it holds at most ``JOURNAL_WINDOW`` (packing keeps it
under ``seg_records``). Nothing is loaded as a list of events: a longer
journal is walked on flash with ``os.ilistdir`` when needed (packing,
``pending``, big acks), a segment is read a few records at a time, and
packing streams journal records into the segment file.

Capacity (``capacity``, 2,000 events by default) is limited by the flash:
a segment of 32 records (~1.7 KiB) takes one 4 KiB littlefs block, so
2,000 events take ~63 blocks (~250 KiB) plus the journal's metadata; the
flash filling up is reported as ``OutboxFull`` like the capacity. When every
table slot holds a segment (many partly acked segments), packing waits and
the journal keeps growing on flash, not in RAM.

After a cut between the rename and the journal deletes, an event is in both
places: loading keeps the segment's copy and deletes the journal file.
Acks of records inside a segment are held in RAM (the bitmask); after a
restart those records are sent again and the collector, which ignores
repeats, acks them again.
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
_ENT = "<IIIIBB"  # one segment: first b, s; last b, s; records; acked
_ENT_SIZE = 18
_MASK_BYTES = 8  # acked bitmask: bit n = the segment's n-th record
_E = _ENT_SIZE + _MASK_BYTES
MAX_SEG_RECORDS = 8 * _MASK_BYTES
MAX_SLOTS = 128  # segment table slots at most (26 B each), unless the flash holds more at boot
_CHUNK = 8  # segment records read at a time by pending()
JOURNAL_WINDOW = 64  # journal identities kept in RAM while the journal is no longer than this
PAD = ".pad"  # a file the app writes and removes in the journal's directory to bring its compaction forward


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


def _close(f: "Any") -> None:
    if f is not None:
        try:
            f.close()
        except OSError:
            pass


def _mkdir(path: str) -> None:
    try:
        os.mkdir(path)
    except OSError:
        pass


def _jkey(name: str) -> "tuple[int, int] | None":
    """The identity in a journal file name ``<b>_<s>`` (hex); None for anything else."""
    try:
        b, s = name.split("_")
        return int(b, 16), int(s, 16)
    except ValueError:
        return None


def check_record(raw: bytes) -> "tuple[int, int]":
    """The identity of a packed record whose CRC checks; else ``CorruptRecord``."""
    if len(raw) < _HDR_SIZE + 6:
        raise CorruptRecord("short record (%d bytes)" % len(raw))
    if struct.unpack("<I", raw[-4:])[0] != _crc(raw[:-4]):
        raise CorruptRecord("record CRC mismatch")
    b, s = struct.unpack("<II", raw[1:9])
    return b, s


def _stream_segment(path: str) -> "Any":
    """Yield ``(b, s)`` of each record of a segment file, checking every CRC; ``CorruptRecord`` if damaged.

    Reads one record at a time (no segment-sized buffer); the whole-file CRC
    is checked when the last record has been read.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed in finally; a generator cannot use with across yields cleanly
    except OSError:
        raise CorruptRecord("segment file missing")
    try:
        head = f.read(6)
        if len(head) != 6 or head[:4] != _SEG_MAGIC:
            raise CorruptRecord("segment header damaged")
        n = head[4] | head[5] << 8
        if not 0 < n <= MAX_SEG_RECORDS:
            raise CorruptRecord("segment of %d records (1..%d)" % (n, MAX_SEG_RECORDS))
        crc = crc32(head)
        for _ in range(n):
            lb = f.read(1)
            raw = f.read(lb[0]) if lb else b""
            if not lb or len(raw) != lb[0]:
                raise CorruptRecord("segment length mismatch")
            crc = crc32(raw, crc32(lb, crc))
            yield check_record(raw)
        tail = f.read(4)
        if len(tail) != 4 or f.read(1) or struct.unpack("<I", tail)[0] != crc & 0xFFFFFFFF:
            raise CorruptRecord("segment CRC mismatch")
    finally:
        f.close()


class Outbox:
    """Events saved on flash until the collector's signed ack names them.

    ``open()`` scans what is on flash and bumps the persisted boot counter;
    ``save(ev)`` assigns the identity ``(boot, seq)`` and makes the event
    durable before it returns; ``ack_range(b, lo, hi)`` forgets events;
    ``pending()`` yields unacked events oldest first, read from flash;
    ``maintain()`` packs a full journal into a segment (call it after
    feedback, off the press path).
    """

    def __init__(self, root: str, capacity: int = 2000, seg_records: int = 32) -> None:
        self.root = root
        self.capacity = capacity
        self.seg_records = max(1, min(seg_records, MAX_SEG_RECORDS))
        self.boot = 0
        self.floor = 0
        self.seq = 0
        self.jn = 0  # journal files (events not yet packed)
        # The journal's identities, oldest first, while it holds at most JOURNAL_WINDOW (the usual
        # case: packing keeps it under seg_records): sending and acking then need no directory walk.
        self.jkeys: "list[tuple[int, int]]" = []
        self.jexact = True  # jkeys is the whole journal
        self.nseg = 0  # segments in the table
        self.slots = 0
        self.table = bytearray(0)
        self.depth = 0
        self.quarantined = 0
        self.problems: "list[str]" = []  # last few reported problems, newest last
        # Packing in bounded steps (``pack_step``), resumable between them: the phase (0 idle,
        # 1 copying journal records into the segment's temp file, 2 deleting the copied journal
        # files), the open temp file and its running CRC, the records in the segment and the
        # cursor, which of them were acked meanwhile (bit n: the n-th), and their identities in
        # one fixed buffer (8 bytes each). RAM does not depend on the outbox depth.
        self.pk = 0
        self.pk_file: "Any" = None
        self.pk_raw: "bytes | None" = None  # the record read, to be written into the segment at the next step
        self.pk_crc = 0
        self.pk_n = 0
        self.pk_i = 0
        self.pk_mask = 0
        self.pk_keys = bytearray(8 * self.seg_records)
        self.packed = 0  # segments written since start
        # The next event's journal file, created ahead of its save by ``prepare`` (off the press
        # path): the save then only writes the record and closes it, one metadata commit, not two.
        self.spare: "Any" = None
        self.spare_key: "tuple[int, int] | None" = None

    # ---- start-up ----

    def open(self) -> int:
        """Scan the outbox on flash, bump and persist the boot counter; return it."""
        self.drop_spare()
        _mkdir(self.root)
        for sub in ("/j", "/s", "/q"):
            _mkdir(self.root + sub)
        old, floor = self._read_boot()
        self.floor = floor
        self._set_boot(max(old + 1, floor))
        self.depth = 0
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
        if self.problems and self.problems[-1] == what:
            return  # the same failure again (a retry each ticker pass): one entry, older ones kept
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
        n = 0
        for _ent in os.ilistdir(d):
            n += 1
        self.slots = max(min(self.capacity // self.seg_records + 16, MAX_SLOTS), n)
        self.table = bytearray(self.slots * _E)
        self.nseg = 0
        todo = []  # (name, why): a cut packing (.tmp) or a damaged segment, handled after the walk
        for ent in os.ilistdir(d):
            name = ent[0]
            if name.endswith(".tmp"):
                todo.append((name, ""))  # packing was cut; the journal still holds them
                continue
            try:
                lo = hi = None
                count = 0
                for key in _stream_segment(d + "/" + name):
                    if lo is None or key < lo:
                        lo = key
                    if hi is None or key > hi:
                        hi = key
                    count += 1
            except CorruptRecord as exc:
                todo.append((name, str(exc)))
                continue
            if lo is None or hi is None:
                continue
            want = "%08x%08x" % lo
            if name != want:  # named by its first identity: the table finds it by that name
                try:
                    os.rename(d + "/" + name, d + "/" + want)
                except OSError:
                    todo.append((name, "segment name mismatch"))
                    continue
            self._add(lo, hi, count)
            self.depth += count
        for name, why in todo:
            if why:
                self._quarantine(d + "/" + name, name, why)
            else:
                _remove(d + "/" + name)

    def _load_journal(self) -> None:
        d = self.root + "/j"
        while True:
            todo = []  # at most 16 removals/quarantines per walk: the list stays small
            jn = 0
            for ent in os.ilistdir(d):
                name = ent[0]
                if name == PAD:  # the app's pad, left by a power cut: never an event
                    todo.append((name, ""))
                    if len(todo) >= 16:
                        break
                    continue
                raw = read_file(d + "/" + name) or b""
                try:
                    key = check_record(raw)
                    if key != _jkey(name):
                        raise CorruptRecord("record name mismatch")
                except CorruptRecord as exc:
                    # an empty file was created, never written: its save did not return
                    todo.append((name, str(exc) if raw else ""))
                else:
                    if self._holds(key):
                        todo.append((name, ""))  # packed into a segment just before a cut
                    else:
                        jn += 1
                if len(todo) >= 16:
                    break
            for name, why in todo:
                if why:
                    self._quarantine(d + "/" + name, name, why)
                else:
                    _remove(d + "/" + name)
            if len(todo) < 16:
                break
        self.jn = jn
        self.depth += jn
        self.jexact = False
        self._jwindow()

    # ---- the segment table ----

    def _ent(self, i: int) -> "tuple[int, int, int, int, int, int]":
        e: "tuple[int, int, int, int, int, int]" = struct.unpack_from(_ENT, self.table, i * _E)
        return e

    def _add(self, lo: "tuple[int, int]", hi: "tuple[int, int]", count: int) -> None:
        """Insert a segment, keeping the table ordered by first identity."""
        if self.nseg >= self.slots:  # only at load, when the flash holds more than counted: grow
            self.table.extend(bytearray(_E))
            self.slots += 1
        i = self.nseg
        while i > 0:
            e = self._ent(i - 1)
            if (e[0], e[1]) < lo:
                break
            i -= 1
        t = self.table
        if i < self.nseg:
            t[(i + 1) * _E : (self.nseg + 1) * _E] = t[i * _E : self.nseg * _E]
        struct.pack_into(_ENT, t, i * _E, lo[0], lo[1], hi[0], hi[1], count, 0)
        for n in range(_MASK_BYTES):
            t[i * _E + _ENT_SIZE + n] = 0
        self.nseg += 1

    def _drop(self, i: int) -> None:
        t = self.table
        n = self.nseg
        if i < n - 1:
            t[i * _E : (n - 1) * _E] = t[(i + 1) * _E : n * _E]
        self.nseg = n - 1

    def _index(self, first: "tuple[int, int]") -> int:
        """The table slot of the segment starting at ``first``; -1 when gone."""
        for i in range(self.nseg):
            e = self._ent(i)
            if e[0] == first[0] and e[1] == first[1]:
                return i
        return -1

    def _after(self, first: "tuple[int, int] | None") -> int:
        """The slot of the oldest segment starting after ``first`` (None: the oldest); -1: none."""
        for i in range(self.nseg):
            e = self._ent(i)
            if first is None or (e[0], e[1]) > first:
                return i
        return -1

    def _seg_path(self, e: "tuple[int, ...]") -> str:
        return "%s/s/%08x%08x" % (self.root, e[0], e[1])

    def _positions(self, e: "tuple[int, ...]", b: int, lo: int, hi: int) -> "Any":
        """Positions in segment ``e`` of the records of boot ``b`` with ``lo <= seq <= hi``."""
        if e[0] == e[2] and e[3] - e[1] + 1 == e[4]:  # consecutive identities: no flash read
            if b == e[0]:
                for s in range(max(lo, e[1]), min(hi, e[3]) + 1):
                    yield s - e[1]
            return
        p = 0
        g = _stream_segment(self._seg_path(e))
        try:
            for kb, ks in g:
                if kb == b and lo <= ks <= hi:
                    yield p
                p += 1
        finally:
            g.close()

    def _holds(self, key: "tuple[int, int]") -> bool:
        """True when a segment in the table holds identity ``key``."""
        for i in range(self.nseg):
            e = self._ent(i)
            if (e[0], e[1]) <= key <= (e[2], e[3]):
                found = False
                g = self._positions(e, key[0], key[1], key[1])
                try:
                    for _p in g:
                        found = True
                        break
                except CorruptRecord:
                    pass
                g.close()  # MicroPython does not close a dropped generator: its file would stay open
                return found
        return False

    def _acked(self, i: int, p: int) -> bool:
        return bool(self.table[i * _E + _ENT_SIZE + (p >> 3)] & (1 << (p & 7)))

    def _lost(self, first: "tuple[int, int]", exc: Exception) -> None:
        """A segment damaged or gone after it was loaded: keep working, report, drop its count."""
        i = self._index(first)
        if i < 0:
            return  # fully acked (and deleted) while the caller was reading it
        e = self._ent(i)
        self._drop(i)
        self.depth -= e[4] - e[5]
        path = self._seg_path(e)
        name = path.rsplit("/", 1)[1]
        if read_file(path) is None:
            self._problem("lost segment %s: %s" % (name, exc))
        else:
            self._quarantine(path, name, str(exc))

    # ---- running ----

    @property
    def full(self) -> bool:
        return self.depth >= self.capacity

    def _jpath(self, b: int, s: int) -> str:
        return "%s/j/%x_%x" % (self.root, b, s)

    def save(self, ev: "dict[str, Any]") -> "tuple[int, int]":
        """Assign the identity, write the event durably, return ``(boot, seq)``.

        Interrupted (``MemoryError``) before it returns, a call again with the
        same event writes the same file: the identity is taken only on success.
        """
        if self.depth >= self.capacity:
            raise OutboxFull("outbox full: %d unacked events" % self.depth)
        ev["b"] = self.boot
        ev["s"] = self.seq
        path = self._jpath(self.boot, self.seq)
        data = pack(ev)
        if self.spare is not None and self.spare_key != (self.boot, self.seq):
            self.drop_spare()  # created for an identity no longer next (a new boot number)
        f = self.spare  # created by ``prepare``: only the record's commit is left to do
        self.spare = None
        self.spare_key = None
        try:
            if f is None:
                f = open(path, "wb")  # noqa: SIM115 - closed below, before the save returns
            f.write(data)
            f.close()  # the record is on flash (littlefs commits it at close): durable from here
        except OSError as exc:
            _close(f)
            _remove(path)
            self._problem("flash write failed: %s" % exc)
            raise OutboxFull("flash write failed: %s" % exc)
        except MemoryError:
            _close(f)  # a retry creates the file again
            raise
        self.seq += 1
        self.jn += 1
        self.depth += 1
        if self.jexact:
            if len(self.jkeys) < JOURNAL_WINDOW:
                self.jkeys.append((ev["b"], ev["s"]))  # the newest identity: the list stays ordered
            else:
                self.jexact = False
                self.jkeys = []
        return ev["b"], ev["s"]

    def prepare(self) -> bool:
        """Create the next event's journal file now (off the press path); True when one was created.

        The next ``save`` then writes the record into it and closes it: one metadata commit on
        the press path instead of two (create, then write). A cut leaves the file empty, and the
        next boot removes it as a save that never completed. ``MemoryError`` propagates.
        """
        key = (self.boot, self.seq)
        if self.spare is not None and self.spare_key == key:
            return False
        self.drop_spare()
        if self.depth >= self.capacity:
            return False
        try:
            self.spare = open(self._jpath(key[0], key[1]), "wb")  # noqa: SIM115 - closed by save or drop_spare
        except OSError as exc:
            self._problem("flash write failed: %s" % exc)
            return False
        self.spare_key = key
        return True

    def drop_spare(self) -> None:
        """Close and remove the journal file ``prepare`` created, if any."""
        f = self.spare
        key = self.spare_key
        self.spare = None
        self.spare_key = None
        if f is not None:
            _close(f)
        if key is not None:
            _remove(self._jpath(key[0], key[1]))

    def _jwindow(self) -> None:
        """Refill the journal's identity window from flash once the journal fits in it again."""
        if not self.jexact and self.jn <= JOURNAL_WINDOW:
            keys = self._journal_oldest(JOURNAL_WINDOW, None)
            self.jexact = len(keys) == self.jn
            self.jkeys = keys if self.jexact else []

    def _journal_oldest(self, n: int, after: "tuple[int, int] | None") -> "list[tuple[int, int]]":
        """The ``n`` smallest journal identities above ``after``, from one walk of the directory."""
        keys: "list[tuple[int, int]]" = []
        for ent in os.ilistdir(self.root + "/j"):
            key = _jkey(ent[0])
            if key is None or (after is not None and key <= after) or self._packed(key) or key == self.spare_key:
                continue
            if len(keys) >= n:
                if key >= keys[-1]:
                    continue
                keys.pop()
            i = len(keys)
            while i > 0 and keys[i - 1] > key:
                i -= 1
            keys.insert(i, key)
        return keys

    def maintain(self) -> bool:
        """Pack the oldest ``seg_records`` journal events into a segment at once; True when one was written.

        ``pack_step`` until the packing is done (tests, the bench's wear figures); the app calls
        ``pack_step`` itself, yielding the loop between two steps.
        """
        n = self.packed
        while self.pack_step():
            pass
        return self.packed != n

    def pack_step(self) -> bool:
        """One bounded step of packing the journal into a segment; True while there is more to do.

        A step is one flash operation or so: open the segment's temp file (when the journal
        holds ``seg_records`` events), read one journal record, write it into the temp file,
        close it, rename it, or delete one packed journal file. Between two steps saves, acks and reads go on: a record
        acked before it was copied restarts the packing later (the temp file is removed); one
        acked after is marked acked in the segment; after the rename the segment owns the
        packed identities and the journal files left are only deleted. A journal record found
        damaged is quarantined and the packing tried again later. ``MemoryError`` propagates
        (the app delays packing): while copying, the temp file is removed first; while deleting,
        the next call goes on.
        """
        if self.pk == 1:
            return self._pk_copy()
        if self.pk == 2:
            return self._pk_delete()
        return self._pk_start()

    def _pk_key(self, i: int) -> "tuple[int, int]":
        k: "tuple[int, int]" = struct.unpack_from("<II", self.pk_keys, 8 * i)
        return k

    def _pk_tmp(self) -> str:
        return self._seg_path(self._pk_key(0)) + ".tmp"

    def _packed(self, key: "tuple[int, int]") -> bool:
        """True for a journal file already owned by the segment just written (deleted soon)."""
        return self.pk == 2 and key <= self._pk_key(self.pk_n - 1)

    def _pk_start(self) -> bool:
        if self.jn < self.seg_records or self.nseg >= self.slots:
            return False
        self._jwindow()
        keys = self.jkeys[: self.seg_records] if self.jexact else self._journal_oldest(self.seg_records, None)
        if not keys:
            return False
        for i, key in enumerate(keys):
            struct.pack_into("<II", self.pk_keys, 8 * i, key[0], key[1])
        self.pk_n = len(keys)
        self.pk_i = 0
        self.pk_mask = 0
        tmp = self._pk_tmp()
        head = _SEG_MAGIC + struct.pack("<H", self.pk_n)
        try:
            f = open(tmp, "wb")  # noqa: SIM115 - stays open across steps; closed in _pk_copy/_pk_abort
            self.pk_file = f
            self.pk = 1
            f.write(head)
        except (OSError, MemoryError) as exc:
            return self._pk_fail(exc)
        self.pk_crc = crc32(head)
        return True

    def _pk_abort(self) -> None:
        """Give up the packing under way (phase 1): close and remove the temp file."""
        f = self.pk_file
        self.pk_file = None
        self.pk_raw = None
        self.pk = 0
        _close(f)
        _remove(self._pk_tmp())

    def _pk_fail(self, exc: Exception) -> bool:
        """Writing the segment failed: give the packing up (its temp file removed); a ``MemoryError`` propagates."""
        self._pk_abort()
        if isinstance(exc, MemoryError):
            raise exc
        self._problem("segment write failed: %s" % exc)
        return False

    def _pk_copy(self) -> bool:
        i = self.pk_i
        if i >= self.pk_n:  # every record copied, the temp file closed (the step before): name it
            tmp = self._pk_tmp()
            try:
                os.rename(tmp, tmp[:-4])
            except OSError as exc:
                return self._pk_fail(exc)
            self._pk_written()
            return True
        key = self._pk_key(i)
        raw = self.pk_raw
        if raw is not None:  # read the step before: write it now (acked meanwhile: the mask says so)
            self.pk_raw = None
            return self._pk_put(raw)
        if self.pk_mask >> i & 1:  # acked before it was read: the segment would count it
            self._pk_abort()
            return False
        raw = read_file(self._jpath(key[0], key[1])) or b""
        try:
            if check_record(raw) != key:
                raise CorruptRecord("record name mismatch")
        except CorruptRecord as exc:
            self._pk_abort()
            name = "%x_%x" % key
            self._quarantine(self.root + "/j/" + name, name, str(exc))
            self.jn -= 1
            self.depth -= 1
            if key in self.jkeys:
                self.jkeys.remove(key)
            return False
        self.pk_raw = raw  # reading a journal file (a path lookup) is one step, writing it into the segment the next
        return True

    def _pk_put(self, raw: bytes) -> bool:
        """Write the record read by the step before into the segment's temp file; after the last, close it."""
        i = self.pk_i
        f = self.pk_file
        try:
            lb = bytes((len(raw),))
            f.write(lb)
            f.write(raw)
            self.pk_crc = crc32(raw, crc32(lb, self.pk_crc))
            self.pk_i = i + 1
            if self.pk_i < self.pk_n:
                return True
            f.write(struct.pack("<I", self.pk_crc & 0xFFFFFFFF))
            f.close()  # the segment's data on flash (a block erased for it): one step; its rename the next
            self.pk_file = None
        except (OSError, MemoryError) as exc:
            return self._pk_fail(exc)
        return True

    def _pk_written(self) -> None:
        """The segment is on flash: it owns the packed identities; their journal files go next."""
        n = self.pk_n
        first = self._pk_key(0)
        last = self._pk_key(n - 1)
        mask = self.pk_mask
        acked = 0
        for p in range(n):
            acked += mask >> p & 1
        self.jn -= n - acked
        if self.jexact:
            k = 0
            while k < len(self.jkeys) and self.jkeys[k] <= last:
                k += 1
            del self.jkeys[:k]
        self.packed += 1
        self.pk = 2
        self.pk_i = 0
        if acked == n:  # every record acked while it was packed
            _remove(self._seg_path(first))
            return
        self._add(first, last, n)
        i = self._index(first)
        t = self.table
        for p in range(n):
            if mask >> p & 1:
                t[i * _E + _ENT_SIZE + (p >> 3)] |= 1 << (p & 7)
        t[i * _E + 17] = acked

    def _pk_delete(self) -> bool:
        while self.pk_i < self.pk_n:
            p = self.pk_i
            self.pk_i = p + 1
            if not self.pk_mask >> p & 1:  # an acked one's file is gone already
                key = self._pk_key(p)
                _remove(self._jpath(key[0], key[1]))
                return True
        self.pk = 0
        first = self._pk_key(0)
        i = self._index(first)
        if i >= 0:
            e = self._ent(i)
            if e[5] >= e[4]:  # fully acked while its journal files were deleted: kept till now
                _remove(self._seg_path(e))
                self._drop(i)
        return False

    def ack(self, b: int, s: int) -> bool:
        """Forget event ``(b, s)``; False when the outbox does not hold it."""
        return self.ack_range(b, s, s) == 1

    def ack_range(self, b: int, lo: int, hi: int) -> int:
        """Forget every held event of boot ``b`` with ``lo <= seq <= hi``; return how many."""
        done = 0
        for done in self.ack_steps(b, lo, hi):  # noqa: B007 - its last value is the total
            pass
        return done

    def ack_steps(self, b: int, lo: int, hi: int) -> "Any":
        """``ack_range`` in steps: a generator yielding how many were forgotten so far after each flash operation.

        Its last value is the total. Saves, packing, reads and other acks may run between two
        steps (the app yields the loop there): each step looks the table up again.
        """
        done = 0
        if hi < lo:
            yield 0
            return
        cur: "tuple[int, int] | None" = None
        while True:
            i = self._after(cur)
            if i < 0:
                break
            e = self._ent(i)
            cur = (e[0], e[1])
            if cur > (b, hi):
                break  # ordered by first identity: the rest start after the range
            if (e[2], e[3]) < (b, lo):
                continue
            n = 0
            t = self.table
            try:
                for p in self._positions(e, b, lo, hi):
                    a = i * _E + _ENT_SIZE + (p >> 3)
                    bit = 1 << (p & 7)
                    if not t[a] & bit:
                        t[a] |= bit
                        n += 1
            except CorruptRecord as exc:
                # bits set before the damage showed are dropped with the segment's count
                self._lost(cur, exc)
                continue
            done += n
            self.depth -= n
            t[i * _E + 17] = e[5] + n
            if e[5] + n >= e[4] and not (self.pk == 2 and cur == self._pk_key(0)):
                _remove(self._seg_path(e))
                self._drop(i)
                yield done
        while self.jn:
            batch = self._jbatch(b, lo, hi)
            if not batch:
                break
            for key in batch:
                if self._jforget(key):
                    done += 1
                yield done
            lo = batch[-1][1] + 1
        yield done

    def _jbatch(self, b: int, lo: int, hi: int) -> "list[tuple[int, int]]":
        """Up to 8 journal identities of boot ``b`` from ``lo`` to ``hi`` to delete next, oldest first."""
        if self.jexact:  # the window is the journal
            return [k for k in self.jkeys if k[0] == b and lo <= k[1] <= hi][:8]
        if hi - lo < 2 * self.jn + 8:  # a few ids: try each (a missing file is a repeat ack)
            return [(b, s) for s in range(lo, min(hi, lo + 7) + 1)]
        keys: "list[tuple[int, int]]" = []  # a wide range: one walk of the journal per 8
        for ent in os.ilistdir(self.root + "/j"):
            jk = _jkey(ent[0])
            if jk is None or jk[0] != b or not lo <= jk[1] <= hi or (len(keys) >= 8 and jk >= keys[-1]):
                continue
            if jk == self.spare_key:
                continue
            if len(keys) >= 8:
                keys.pop()
            i = len(keys)
            while i > 0 and keys[i - 1] > jk:
                i -= 1
            keys.insert(i, jk)
        return keys

    def _jforget(self, key: "tuple[int, int]") -> bool:
        """Forget journal event ``key`` (acked); False when the outbox does not hold it there."""
        if key == self.spare_key:  # created ahead, nothing saved in it yet
            return False
        if self._packed(key):  # packed a moment ago: the segment holds it now
            i = self._index(self._pk_key(0))
            for p in range(self.pk_n if i >= 0 else 0):
                if self._pk_key(p) == key:
                    a = i * _E + _ENT_SIZE + (p >> 3)
                    if self.table[a] & 1 << (p & 7):
                        return False
                    self.table[a] |= 1 << (p & 7)
                    self.table[i * _E + 17] += 1
                    self.depth -= 1
                    return True
            return False
        try:
            os.remove(self._jpath(key[0], key[1]))
        except OSError:
            return False
        self.jn -= 1
        self.depth -= 1
        if self.jexact and key in self.jkeys:
            self.jkeys.remove(key)
        if self.pk == 1:  # copied, or about to be, into the segment being packed: note it
            for p in range(self.pk_n):
                if self._pk_key(p) == key:
                    self.pk_mask |= 1 << p
                    break
        return True

    def _read_chunk(self, e: "tuple[int, ...]", off: int, n: int) -> "tuple[list[bytes], int]":
        """Up to ``n`` raw records of segment ``e`` from byte ``off``; the file is closed on return."""
        recs = []
        with open(self._seg_path(e), "rb") as f:
            f.seek(off)
            for _ in range(n):
                lb = f.read(1)
                raw = f.read(lb[0]) if lb else b""
                if not lb or len(raw) != lb[0]:
                    raise CorruptRecord("segment length mismatch")
                recs.append(raw)
                off += 1 + len(raw)
        return recs, off

    def pending(self, skip: "Any" = None, marks: bool = False) -> "Any":
        """Yield unacked events, oldest first (segments, then the journal), read from flash.

        Safe while acks, saves and packing happen between two steps (the
        sender awaits between sends): no file stays open across a yield.
        Events packed during a walk are yielded by the next walk. ``skip``,
        given an identity ``(b, s)``, says to pass an event over without
        reading it (the sender's events in flight). ``marks``: also yield
        None after each read from flash, where a caller yielding the loop
        between two steps can do so (a walk past many events in flight reads
        several segment chunks before it finds one to send).
        """
        first: "tuple[int, int] | None" = None
        while True:
            i = self._after(first)
            if i < 0:
                break
            e = self._ent(i)
            first = (e[0], e[1])
            off = 6
            p = 0
            while p < e[4]:
                try:
                    recs, off = self._read_chunk(e, off, min(_CHUNK, e[4] - p))
                except (OSError, CorruptRecord) as exc:
                    self._lost(first, exc)
                    break
                if marks:
                    yield None
                gone = False
                for raw in recs:
                    i = self._index(first)
                    if i < 0:
                        gone = True  # fully acked while the caller was sending
                        break
                    if not self._acked(i, p) and not (skip and skip(struct.unpack("<II", raw[1:9]))):
                        try:
                            ev = unpack(raw)
                        except CorruptRecord as exc:
                            self._lost(first, exc)
                            gone = True
                            break
                        yield ev
                    p += 1
                if gone:
                    break
        last: "tuple[int, int] | None" = None
        self._jwindow()
        while self.jn:
            if self.jexact:  # a copy: acks and packing may change the window between two steps
                keys = [k for k in self.jkeys if last is None or k > last]
            else:
                keys = self._journal_oldest(2 * _CHUNK, last)  # one walk of the directory per sender window
            if not keys:
                return
            for key in keys:
                last = key
                if skip and skip(key):
                    continue
                jraw = read_file(self._jpath(key[0], key[1]))
                if marks:
                    yield None
                if jraw is None:
                    continue  # acked or packed while the caller was sending
                try:
                    ev = unpack(jraw)
                except CorruptRecord:
                    continue  # quarantined when packed or at the next boot
                yield ev
