"""MQTT topic names: one function each; no topic strings are built elsewhere.

Layout (``evalbox/<device>/…``) lets a broker ACL give each box exactly its
own subtree with the ``%u`` pattern (username = device id).
"""

ROOT = "evalbox"


def uplink(device_id: str) -> str:
    """Events from the box (QoS 1)."""
    return "%s/%s/up" % (ROOT, device_id)


def status(device_id: str) -> str:
    """Retained heartbeat and Last Will ("offline") of the box."""
    return "%s/%s/status" % (ROOT, device_id)


def ack(device_id: str) -> str:
    """Acks from the collector after its commit (QoS 1)."""
    return "%s/%s/ack" % (ROOT, device_id)


def config(device_id: str) -> str:
    """Retained signed config from the collector."""
    return "%s/%s/config" % (ROOT, device_id)


def command(device_id: str) -> str:
    """Signed commands (invite, sign-in, sign-out) relayed by the collector."""
    return "%s/%s/cmd" % (ROOT, device_id)


def firmware(device_id: str) -> str:
    """Firmware offers and chunks to the box (QoS 1, signed with the box's key)."""
    return "%s/%s/fw" % (ROOT, device_id)


def firmware_state(device_id: str) -> str:
    """The box's firmware state: version, slot, trial, transfer offset, last update error (retained)."""
    return "%s/%s/fwst" % (ROOT, device_id)


def all_firmware_state() -> str:
    """Subscription filter for every box's firmware state."""
    return "%s/+/fwst" % ROOT


def alerts() -> str:
    """Alerts published by the collector for supervisors' systems."""
    return "%s/_alerts" % ROOT


def probe(nonce: str) -> str:
    """A collector's own test message (shared-subscription check at start); no box topic matches it."""
    return "%s/_probe/%s" % (ROOT, nonce)


def all_uplinks() -> str:
    """Subscription filter for every box's events."""
    return "%s/+/up" % ROOT


def all_status() -> str:
    """Subscription filter for every box's status."""
    return "%s/+/status" % ROOT


def device_of(topic: str) -> "str | None":
    """The device id in a box topic, or None when the topic is not one."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != ROOT or not parts[1] or parts[1].startswith("_"):
        return None
    return parts[1]


def kind_of(topic: str) -> "str | None":
    """The last level of a box topic (``up``, ``status``, ``ack``, ``config``, ``cmd``)."""
    parts = topic.split("/")
    return parts[2] if len(parts) == 3 and parts[0] == ROOT else None
