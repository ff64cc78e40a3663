"""The fleet package's error: a release that cannot be built, signed or checked."""

from collector.errors import EvalboxError


class FleetError(EvalboxError):
    """A key, source tree, release file or argument the fleet commands cannot use; the message names it."""
