"""The collector's exception tree.

EvalboxError            root; the CLI prints it and exits non-zero
├── ConfigError         a bad config or policy file (names the key)
├── StoreError          the store refused or is unreachable
└── UsageError          a bad command-line value
"""


class EvalboxError(Exception):
    """Root of every error the collector raises on purpose."""


class ConfigError(EvalboxError):
    """A config or policy file that cannot be used; the message names the key."""


class StoreError(EvalboxError):
    """The store failed or refused an operation."""


class UsageError(EvalboxError):
    """A command-line value that makes no sense."""
