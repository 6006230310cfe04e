"""Exceptions a user can act on. Every error the package raises on purpose derives from GotDataError."""


class GotDataError(Exception):
    """Base class: catch this to handle any got-data failure."""


class RecordError(GotDataError):
    """A record breaks the schema or one of its invariants."""


class CodecError(GotDataError):
    """GoT text is malformed (unbalanced grounding tokens, a bad box)."""


class ShardError(GotDataError):
    """A shard or output folder cannot be read or written as asked."""


class SpecError(GotDataError):
    """A pipeline spec (YAML) or prompt template is missing or invalid."""


class InputError(GotDataError):
    """An input source (folder, manifest, shards) cannot be used."""


class ModelError(GotDataError):
    """A model could not be loaded or served."""


class LocalRayError(GotDataError):
    """A local Ray cannot be started as safely as got-data starts one (e.g. token auth switched off)."""


class InputRefused(InputError):
    """One input cannot be used: `reason` is the stable word its reject row carries, `detail` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # keep reason/detail when Ray pickles the exception
        return (type(self), (self.reason, self.detail))


class StageContractError(SpecError):
    """A stage touched a work field its `reads`/`writes` do not declare (checked when auditing is on)."""
