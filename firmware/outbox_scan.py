"""The outbox's scan of the flash at start-up (``Outbox.open``), apart so that its bytecode is freed after it.

``load_segments`` reads every segment once (checking each record's CRC),
names it by its first identity and fills the segment table; ``load_journal``
counts the journal, removes empty files (a save cut before it returned) and
copies also held by a segment (packing cut before its deletes), and
quarantines damaged records. Both walk the directories with ``os.ilistdir``,
holding at most 16 names at a time.
"""

import os

from firmware.outbox import (
    _E,
    MAX_SLOTS,
    CorruptRecord,
    Outbox,
    _jkey,
    _remove,
    _stream_segment,
    check_record,
    read_file,
)


def load_segments(ob: "Outbox") -> None:
    d = ob.root + "/s"
    n = 0
    for _ent in os.ilistdir(d):
        n += 1
    ob.slots = max(min(ob.capacity // ob.seg_records + 16, MAX_SLOTS), n)
    ob.table = bytearray(ob.slots * _E)
    ob.nseg = 0
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
        ob._add(lo, hi, count)
        ob.depth += count
    for name, why in todo:
        if why:
            ob._quarantine(d + "/" + name, name, why)
        else:
            _remove(d + "/" + name)


def load_journal(ob: "Outbox") -> None:
    d = ob.root + "/j"
    while True:
        todo = []  # at most 16 removals/quarantines per walk: the list stays small
        jn = 0
        for ent in os.ilistdir(d):
            name = ent[0]
            raw = read_file(d + "/" + name) or b""
            try:
                key = check_record(raw)
                if key != _jkey(name):
                    raise CorruptRecord("record name mismatch")
            except CorruptRecord as exc:
                # an empty file was created, never written: its save did not return
                todo.append((name, str(exc) if raw else ""))
            else:
                if _holds(ob, key):
                    todo.append((name, ""))  # packed into a segment just before a cut
                else:
                    jn += 1
            if len(todo) >= 16:
                break
        for name, why in todo:
            if why:
                ob._quarantine(d + "/" + name, name, why)
            else:
                _remove(d + "/" + name)
        if len(todo) < 16:
            break
    ob.jn = jn
    ob.depth += jn
    ob.jexact = False
    ob._jwindow()


def _holds(ob: "Outbox", key: "tuple[int, int]") -> bool:
    """True when a segment in the table holds identity ``key``."""
    for i in range(ob.nseg):
        e = ob._ent(i)
        if (e[0], e[1]) <= key <= (e[2], e[3]):
            found = False
            g = ob._positions(e, key[0], key[1], key[1])
            try:
                for _p in g:
                    found = True
                    break
            except CorruptRecord:
                pass
            g.close()  # MicroPython does not close a dropped generator: its file would stay open
            return found
    return False
