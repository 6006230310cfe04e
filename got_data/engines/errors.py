"""Engine-layer exceptions; all are `ModelError`s, hence `GotDataError`s."""

from got_data.errors import ModelError


class PoolConfigError(ModelError):
    """A pool configuration cannot be served (unknown role or family, bad sizes, missing model)."""


class PromptError(ModelError):
    """Messages and images of a request do not fit together (e.g. image count mismatch)."""


class PoolClosedError(ModelError):
    """The pool was shut down, or every actor slot failed to restart."""
