"""The web package's errors: a supervisor's action that cannot be done, or is not theirs to do."""

from __future__ import annotations

from collector.errors import EvalboxError


class ActionError(EvalboxError):
    """An action on a case or an alert that cannot be done (not found, already closed, missing text)."""


class Forbidden(ActionError):
    """The case or alert belongs to a unit the viewer may not see."""
