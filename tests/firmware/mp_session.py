"""Session rules, run under MicroPython. Times are explicit: no sleeping.

Prints ``ok <rule>`` per rule and ``session: N passed`` last.
"""

import sys

from firmware.session import (
    F_CLOCK_UNSYNCED,
    F_NO_OFFICER,
    F_OUTSIDE_HOURS,
    F_REPEAT,
    F_TOO_FAST,
    F_UNSOLICITED,
    Session,
)

passed = 0


def ok(name: str) -> None:
    global passed
    passed += 1
    print("ok", name)


def last(evs: list) -> dict:
    return evs[-1]


s = Session(scale=2, invite_ms=10000, min_interval_ms=3000, officer="A1")

# unsolicited: no invite open
p = last(s.press(1, 0, True, None))
assert p["t"] == "press" and p["f"] == F_UNSOLICITED and p["i"] is None, p
ok("unsolicited press flagged")

# invite window: first press inside it is the rating, with invite no and ticket
inv = s.invite(5000, "T-1")
assert inv == [{"t": "invite", "i": 1, "tk": "T-1"}], inv
p = last(s.press(2, 9000, True, None))
assert p["f"] == 0 and p["i"] == 1 and p["tk"] == "T-1" and p["k"] == 2 and p["n"] == 2, p
ok("first press inside the window rates the invite")

# one rating per invite: the next press in the window is a repeat
p = last(s.press(1, 13000, True, None))
assert p["f"] == F_REPEAT and p["i"] == 1, p
ok("second press in the same window flagged repeat")

# window closes: a rated invite yields no unrated event; later presses are unsolicited
assert s.tick(15001) == []
p = last(s.press(1, 20000, True, None))
assert p["f"] == F_UNSOLICITED, p
ok("press after the window is unsolicited")

# min interval: too fast presses are flagged and do not use up the invite
s.invite(21000, None)
p = last(s.press(1, 22000, True, None))
assert p["f"] == F_TOO_FAST and p["i"] == 2, p
p = last(s.press(2, 25500, True, None))
assert p["f"] == 0 and p["i"] == 2, p
ok("too-fast press flagged and does not rate the invite")

# unrated expiry: an invite nobody rated yields one unrated event
s.invite(40000, "T-3")
assert s.tick(49999) == []
assert s.tick(50000) == [{"t": "unrated", "i": 3, "tk": "T-3"}]
assert s.tick(60000) == []
ok("expired unrated invite yields one unrated event")

# a new invite while one is open and unrated closes it as unrated first
s.invite(70000, None)
evs = s.invite(71000, "T-5")
assert [e["t"] for e in evs] == ["unrated", "invite"] and evs[0]["i"] == 4 and evs[1]["i"] == 5, evs
# a press after expiry but before the ticker ran: unrated first, then unsolicited press
evs = s.press(1, 90000, True, None)
assert [e["t"] for e in evs] == ["unrated", "press"] and evs[1]["f"] == F_UNSOLICITED, evs
ok("re-invite and late press close the open invite as unrated")

# sign-in / sign-out; officer recorded; no officer flagged
assert s.signin("B2") == [{"t": "signout", "o": "A1"}, {"t": "signin", "o": "B2"}]
assert s.officer == "B2"
assert s.signout() == [{"t": "signout", "o": "B2"}] and s.officer is None
assert s.signout() == []
p = last(s.press(1, 100000, True, None))
assert p["f"] & F_NO_OFFICER, p
ok("sign-in and sign-out; press without officer flagged")

# clock unsynced and opening hours
p = last(s.press(1, 110000, False, None))
assert p["f"] & F_CLOCK_UNSYNCED, p
s.apply(3, 10000, 3000, True, [8 * 60, 17 * 60])
p = last(s.press(3, 120000, True, 7 * 60))
assert p["f"] & F_OUTSIDE_HOURS and p["n"] == 3, p
p = last(s.press(3, 130000, True, 9 * 60))
assert not p["f"] & F_OUTSIDE_HOURS, p
s.apply(2, 10000, 3000, True, [22 * 60, 6 * 60])  # night shift across midnight
assert s.outside_hours(12 * 60) and not s.outside_hours(23 * 60) and not s.outside_hours(60)
ok("clock unsynced and outside-hours flags; config changes scale")

# keys outside the scale are refused
try:
    s.press(3, 140000, True, None)
    raise AssertionError("key 3 accepted on a 2-level scale")
except ValueError:
    pass
ok("key outside the scale refused")

print("session: %d passed" % passed)
sys.exit(0)
