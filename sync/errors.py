"""One error hierarchy for the whole service.

Every failure is classified once, where it is raised (the adapters at the edge), as either
transient (worth retrying later: throttling, timeouts, a service that is briefly down) or terminal
(retrying the same input gives the same answer: bad data, missing coupling, bad configuration).
The engine and the job runner branch on these two classes only, never on HTTP status codes.
"""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error bcsync raises on purpose.

    `code` is the service's own error code when there is one (a Dataverse HRESULT such as
    0x80044331, a Business Central code such as Application_StringExceededLength), else ours.
    `skippable` False: a record failing with it is retried at every run, never skipped for failing twice the same
    way (see RecordError).
    """

    transient = False
    skippable = True

    def __init__(self, message: str, *, code: str = "", status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retry_after = retry_after


class TransientError(SyncError):
    """Retry later: the same request may well succeed."""

    transient = True


class TerminalError(SyncError):
    """Do not retry blindly: log it, skip the record or stop the job, and report it."""


class ThrottledError(TransientError):
    """The service asked us to slow down (429, or 503 with Retry-After)."""


class ServiceUnavailableError(TransientError):
    """A 5xx, a timeout or a dropped connection."""


class WriteOutcomeUnknown(TransientError):
    """A non-idempotent write was sent but no answer came back; it may or may not have happened."""


class AuthenticationError(TerminalError):
    """The token endpoint refused us, or a service rejected our token or our identity."""


class ConfigurationError(TerminalError):
    """Settings or mapping definitions are wrong; nothing will work until they are fixed."""


class SettingsError(ConfigurationError):
    """Settings that can never work as they are. `problems` maps each setting to what is wrong with its value and
    how to fix it; all are reported at once. Raised when the settings are loaded, and at the edge when the wire
    shows that a configured host or identity does not exist (a name that does not resolve, a closed port, a
    certificate no trusted CA signed, a tenant or client Entra ID does not know): retrying cannot help, fixing
    the setting does."""

    def __init__(self, problems: dict[str, str]):
        listed = "; ".join(f"{name}: {problem}" for name, problem in problems.items())
        super().__init__(f"{len(problems)} settings are wrong: {listed}." if len(problems) > 1 else f"{listed}.",
                         code="SettingsError")
        self.problems = dict(problems)


class NotFoundError(TerminalError):
    """The addressed record does not exist (or no longer exists)."""


class ConcurrencyError(TransientError):
    """The record changed between our read and our write (stale ETag); re-read and try again."""


class LeaseLost(TransientError):
    """Another worker took the job over (our lease expired): the job stops without saving anything more, as what it
    would save (its watermark, its cursors) may now be behind what the new owner saved."""


class AlreadyExistsError(TerminalError):
    """A record with the same key already exists."""


class MessageError(TerminalError):
    """A queue message that is not a bcsync job message, or points at no job: delivering it again gives the same
    answer. `field` names the part of the message that is wrong."""

    def __init__(self, message: str, *, field: str = ""):
        super().__init__(message, code="BadJobMessage")
        self.field = field


class RecordError(TerminalError):
    """A problem with one record's data: the message names the record and the field. `skippable` False: the cause
    lies in other records (a price list's lines), whose changes do not change this one, so it is retried at every
    run rather than skipped after failing twice the same way."""

    def __init__(self, message: str, *, field: str = "", code: str = "", status: int | None = None,
                 skippable: bool = True):
        super().__init__(message, code=code, status=status)
        self.field = field
        self.skippable = skippable


def stops_job(error: BaseException | None) -> bool:
    """Whether a record's write error stops its job rather than fail the record: the service giving out. A row
    changed meanwhile (ConcurrencyError) is the record's error, retried at the next run."""
    return isinstance(error, SyncError) and error.transient and not isinstance(error, ConcurrencyError)


class ConflictError(RecordError):
    """Both sides changed the same field since the last synchronisation."""

    def __init__(self, message: str, *, fields: tuple[str, ...]):
        super().__init__(message, field=", ".join(fields), code="UpdateConflict")
        self.fields = fields


SHOWN_LENGTH = 100


def cut(text: str, limit: int = SHOWN_LENGTH) -> str:
    """User input as an error message quotes it: a huge value is cut, never echoed whole."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def shown(value: object, limit: int = SHOWN_LENGTH) -> str:
    """A value's repr as an error message quotes it, cut like `cut`."""
    return cut(repr(value), limit)
