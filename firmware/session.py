"""Session rules: pure, no I/O; every method returns the events to save.

An invite opens a rating window of ``invite_ms``. The first press inside it
(not too fast) is the rating and carries the invite's number and ticket; a
further press in the same window is flagged ``repeat``; a press closer than
``min_interval_ms`` to the previous press is flagged ``too fast`` and does
not use up the invite; a press with no open invite is ``unsolicited``. An
invite that closes unrated yields an ``unrated`` event. Flags are facts; the
collector's policy decides what counts.

Events are dicts with ``t`` and the type's fields; the app adds identity,
times and the officer (``o``) when it saves them.
"""

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

F_UNSOLICITED = 1
F_REPEAT = 2
F_TOO_FAST = 4
F_NO_OFFICER = 8
F_CLOCK_UNSYNCED = 16
F_OUTSIDE_HOURS = 32


def _diff(a: int, b: int) -> int:
    return a - b


class Session:
    """The rating state of one window. Times are monotonic milliseconds."""

    def __init__(
        self,
        scale: int = 2,
        invite_ms: int = 10000,
        min_interval_ms: int = 3000,
        gated: bool = True,
        hours: "list[int] | None" = None,
        officer: "str | None" = None,
    ) -> None:
        self.scale = scale
        self.invite_ms = invite_ms
        self.min_interval_ms = min_interval_ms
        self.gated = gated
        self.hours = hours
        self.officer = officer
        self.invite_no = 0
        self.open_no: "int | None" = None  # invite number of the open window
        self.open_tk: "str | None" = None
        self.opened_ms = 0
        self.rated = False
        self.last_press_ms: "int | None" = None

    def apply(self, scale: int, invite_ms: int, min_interval_ms: int, gated: bool, hours: "list[int] | None") -> None:
        """Take new settings (from the collector's config)."""
        self.scale = scale
        self.invite_ms = invite_ms
        self.min_interval_ms = min_interval_ms
        self.gated = gated
        self.hours = hours

    def tick(self, now_ms: int) -> "list[dict[str, Any]]":
        """Close an expired window; return an ``unrated`` event if nobody rated it."""
        if self.open_no is None or _diff(now_ms, self.opened_ms) < self.invite_ms:
            return []
        return self._close()

    def _close(self) -> "list[dict[str, Any]]":
        out = []
        if not self.rated:
            out.append({"t": "unrated", "i": self.open_no, "tk": self.open_tk})
        self.open_no = None
        self.open_tk = None
        self.rated = False
        return out

    def invite(self, now_ms: int, tk: "str | None" = None) -> "list[dict[str, Any]]":
        """Open a window (closing the previous one first)."""
        out = self._close() if self.open_no is not None else []
        self.invite_no += 1
        self.open_no = self.invite_no
        self.open_tk = tk
        self.opened_ms = now_ms
        self.rated = False
        out.append({"t": "invite", "i": self.invite_no, "tk": tk})
        return out

    def outside_hours(self, local_min: "int | None") -> bool:
        if self.hours is None or local_min is None:
            return False
        lo, hi = self.hours[0], self.hours[1]
        if lo <= hi:
            return not (lo <= local_min < hi)
        return hi <= local_min < lo  # opening hours cross midnight

    def press(self, k: int, now_ms: int, synced: bool, local_min: "int | None") -> "list[dict[str, Any]]":
        """A citizen pressed level ``k`` (1 = best); return the events to save."""
        if k < 1 or k > self.scale:
            raise ValueError("key %d outside 1..%d" % (k, self.scale))
        out = self.tick(now_ms)
        f = 0
        i = None
        tk = None
        too_fast = self.last_press_ms is not None and _diff(now_ms, self.last_press_ms) < self.min_interval_ms
        self.last_press_ms = now_ms
        if too_fast:
            f |= F_TOO_FAST
        if self.open_no is None:
            f |= F_UNSOLICITED
        else:
            i = self.open_no
            tk = self.open_tk
            if self.rated:
                f |= F_REPEAT
            elif not too_fast:
                self.rated = True
        if self.officer is None:
            f |= F_NO_OFFICER
        if not synced:
            f |= F_CLOCK_UNSYNCED
        elif self.outside_hours(local_min):
            f |= F_OUTSIDE_HOURS
        out.append({"t": "press", "k": k, "n": self.scale, "f": f, "i": i, "tk": tk})
        return out

    def signin(self, officer: str) -> "list[dict[str, Any]]":
        out = []
        if self.officer is not None and self.officer != officer:
            out = self.signout()
        self.officer = officer
        out.append({"t": "signin", "o": officer})
        return out

    def signout(self) -> "list[dict[str, Any]]":
        if self.officer is None:
            return []
        ev = {"t": "signout", "o": self.officer}
        self.officer = None
        return [ev]
