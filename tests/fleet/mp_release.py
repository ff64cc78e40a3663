"""Check release files with the box's reader, on the real micropython, from the release's own compiled modules.

``micropython tests/fleet/mp_release.py CASES.json PUBKEY_HEX`` with MICROPYPATH
pointing at a tree unpacked from a release (firmware/*.mpy, protocol/*.mpy).
Each case: ``{"name", "file", "board", "floor", "expect"}`` (``expect``: ``ok``
or a refusal reason). Prints ``case NAME: ok|REASON`` per case, then one async
check beside a ticker task, and ends with ``release: N passed, M failed``.
"""

import asyncio
import gc
import json
import sys
from binascii import unhexlify

from firmware import release


def run(cases_path, key):
    with open(cases_path) as f:
        cases = json.load(f)
    ok = 0
    fails = []
    print("reader from", release.__file__)
    for c in cases:
        gc.collect()
        try:
            release.verify_release(c["file"], key, release.BoxState(c["board"], c["floor"]))
            got = "ok"
        except release.ReleaseError as exc:
            got = exc.reason
        print("case %s: %s" % (c["name"], got))
        if got == c["expect"]:
            ok += 1
        else:
            fails.append("%s: got %s, want %s" % (c["name"], got, c["expect"]))

    # the async reader leaves the loop free: a ticker keeps running while a whole release is checked
    ticks = [0]
    done = [False]

    async def ticker():
        while not done[0]:
            ticks[0] += 1
            await asyncio.sleep(0)

    async def main():
        t = asyncio.create_task(ticker())
        m = await release.averify_release(cases[0]["file"], key, release.BoxState(cases[0]["board"]), 0)
        done[0] = True
        await t
        return m

    m = asyncio.run(main())
    print("async: %d files, ticker ran %d times" % (len(m["files"]), ticks[0]))
    if len(m["files"]) > 0 and ticks[0] >= 300:
        ok += 1
    else:
        fails.append("async check: %d ticks" % ticks[0])
    return ok, fails


if __name__ == "__main__":
    n_ok, failures = run(sys.argv[1], unhexlify(sys.argv[2]))
    for f in failures:
        print("FAIL", f)
    print("release: %d passed, %d failed" % (n_ok, len(failures)))
