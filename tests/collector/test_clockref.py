"""The rules that set the (receive time, uptime) reference placing a box's unsynced events."""

from __future__ import annotations

from collector.ingest.clockref import ClockRefs

DAY = 86_400_000


def test_a_retained_status_is_never_a_reference() -> None:
    refs = ClockRefs()
    assert not refs.status("B", 1, up=60_000, recv=1_000_000, retained=True)
    assert refs.place("B", 1, up=61_000, recv=1_050_000) == 1_050_000  # no reference: its own receipt
    refs.status("B", 1, up=70_000, recv=1_010_000, retained=False)
    assert not refs.status("B", 1, up=70_000, recv=1_000_000 + 10 * 60_000, retained=True)  # re-delivered
    assert refs.place("B", 1, up=80_000, recv=1_900_000) == 1_020_000


def test_a_live_status_places_the_boots_events() -> None:
    refs = ClockRefs()
    assert refs.status("B", 3, up=50_000, recv=1_000_000, retained=False)
    assert refs.place("B", 3, up=20_000, recv=1_000_000) == 970_000
    assert refs.place("B", 2, up=20_000, recv=1_000_000) == 1_000_000  # another boot: no reference yet


def test_a_status_that_waited_is_not_taken_but_a_slow_crystal_is_followed() -> None:
    refs = ClockRefs()
    refs.status("B", 1, up=60_000, recv=1_000_000, retained=False)
    # Queued for the collector while it was down: sent at uptime 65 s, received 8 s late.
    assert not refs.status("B", 1, up=65_000, recv=1_013_000, retained=False)
    assert refs.place("B", 1, up=118_000, recv=1_200_000) == 1_058_000
    # A day later a crystal 50 ppm slow says the boot began 4.3 s later: followed.
    assert refs.status("B", 1, up=60_000 + DAY, recv=1_000_000 + DAY + 4_320, retained=False)
    assert refs.place("B", 1, up=61_000 + DAY, recv=1_000_000 + DAY + 10_000) == 1_000_000 + DAY + 5_320
    # An older status arriving late never moves the reference later.
    assert not refs.status("B", 1, up=70_000, recv=1_000_000 + DAY + 20_000, retained=False)


def test_an_event_showing_an_earlier_boot_becomes_the_reference_and_none_is_placed_after_its_receipt() -> None:
    refs = ClockRefs()
    refs.status("B", 1, up=10_000, recv=1_012_000, retained=False)  # this status waited 2 s somewhere
    assert refs.place("B", 1, up=30_000, recv=1_030_000) == 1_030_000  # received at once: the better reference
    assert refs.place("B", 1, up=40_000, recv=1_500_000) == 1_040_000
    assert refs.take_changed() == [("B", 1, 1_030_000, 30_000)]
    assert refs.take_changed() == []


def test_stored_references_are_used_after_a_restart() -> None:
    before = ClockRefs()
    before.status("B", 7, up=60_000, recv=5_000_000, retained=False)
    after = ClockRefs()
    after.load(before.take_changed())
    assert after.place("B", 7, up=118_000, recv=5_900_000) == 5_058_000
