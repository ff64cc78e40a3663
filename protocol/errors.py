"""The protocol's one error type.

Runs on CPython and MicroPython: no dataclasses, no typing at run time.
"""


class ProtocolError(ValueError):
    """A message, frame or value that breaks the wire protocol.

    ``reason`` is a short stable code (``"bad_json"``, ``"bad_mac"``, ...)
    that the collector counts rejections by; ``str(err)`` is the precise
    human-readable explanation.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__("%s: %s" % (reason, detail) if detail else reason)
        self.reason = reason
        self.detail = detail
