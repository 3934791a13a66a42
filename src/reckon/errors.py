"""Every exception reckon raises, in one hierarchy rooted at :class:`ReckonError`.

This module is a leaf: it imports nothing of reckon, so every layer (the core included) can raise
from it. Each layer owns one branch; catch the branch to handle a layer's failures as a whole, or
:class:`ReckonError` to handle any of them. Messages say what was wrong and how to fix it.

The pure pvAccess protocol library (``reckon.pva.protocol``) is deliberately independent of reckon
and has its own ``ProtocolError``; the pva server and client translate it into :class:`PvaError`.
"""

from __future__ import annotations


class ReckonError(Exception):
    """Root of every exception reckon raises on purpose."""


class ConfigurationError(ReckonError, ValueError):
    """A setting, argument or environment variable has a value reckon cannot use."""


# --------------------------------------------------------------------------------------------
# core
# --------------------------------------------------------------------------------------------


class CoreError(ReckonError):
    """A failure of the inner core (ids, engine, tiers, stores, codec)."""


class InvalidRequestIdError(CoreError, TypeError):
    """A RequestId was built from parts it cannot canonicalise (only str, int, bytes, tuples)."""


class InvalidCachingLevelError(CoreError, ValueError):
    """A caching level that is not one of CachingLevel.NONE, MEMORY or FULL."""


class EngineClosedError(CoreError, RuntimeError):
    """The engine was closed; create a new Engine to resolve more requests."""


class CodecError(CoreError):
    """A value could not be encoded to, or decoded from, bytes."""


class StoreError(CoreError):
    """A store could not be opened or used (bad path, permissions, unusable configuration).

    Failures while reading or writing entries never raise this to callers of the Engine: they
    degrade to misses. It is raised when a store is constructed or used directly and wrongly.
    """


class ComputationCancelledError(CoreError):
    """The computation this request was waiting on was cancelled by an operator."""


class CyclicRequestError(CoreError, RuntimeError):
    """A computation asked (directly or through others) for its own value: it would wait forever."""


class BlockingGetError(CoreError, RuntimeError):
    """Engine.get would block the event loop that must run the computation it waits for; await
    Engine.resolve instead."""


class CodecWarning(UserWarning):
    """A value could not be encoded for the store; it is returned and kept in memory only."""


# --------------------------------------------------------------------------------------------
# memo
# --------------------------------------------------------------------------------------------


class MemoError(ReckonError):
    """A failure of @memoize: decoration, keys, fingerprints."""


class NotMemoizableError(MemoError, TypeError):
    """The decorated object cannot be memoized (a generator, an inline lambda, ...)."""


class UnhashableArgumentError(MemoError, TypeError):
    """An argument cannot be hashed by value; the message names its path and the fix."""


class FingerprintError(MemoError):
    """The code closure of a function could not be fingerprinted."""


class ImpurityWarning(UserWarning):
    """A memoized function reaches time, randomness, the environment or files: a cached result
    may differ from a fresh call. Silence per function with ``@memoize(assume_pure=True)``."""


# --------------------------------------------------------------------------------------------
# observe
# --------------------------------------------------------------------------------------------


class ObserveError(ReckonError):
    """A failure of the introspection server or client."""


class ObserveProtocolError(ObserveError):
    """A peer sent a message that is not part of the introspection protocol."""


class ObserveAuthError(ObserveError):
    """The server requires a token and the client presented none, or a wrong one."""


class ObserveConnectionError(ObserveError, ConnectionError):
    """The client could not reach the introspection server, or lost it."""


class ObserveRequestError(ObserveError):
    """The server answered a request with an error; ``code`` is the protocol's error code
    (``bad_request``, ``not_found``, ``unknown_type``, ...) and the message the server's text."""

    def __init__(self, message: str, code: str = "internal") -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------------------------
# pva
# --------------------------------------------------------------------------------------------


class PvaError(ReckonError):
    """A failure of the pvAccess server or client."""


class PvaTimeoutError(PvaError, TimeoutError):
    """A PV did not answer in time; the message names the PV and the operation."""


class PvaRemoteError(PvaError):
    """The peer answered with an error status; the message carries the peer's text."""


class PvaTypeError(PvaError, TypeError):
    """A value does not fit a PV's type."""


class PvaAccessDeniedError(PvaError, PermissionError):
    """The server's access control refused the operation."""


class PvaShareError(PvaError):
    """PVs shared through Redis disagree (a type differs between instances, a stored value
    cannot be read); the message names the PV and what to change."""


# --------------------------------------------------------------------------------------------
# service
# --------------------------------------------------------------------------------------------


class ServiceError(ReckonError):
    """A failure of the service runtime or of a service call."""


class DeploymentError(ServiceError):
    """A deployment cannot start: a cycle, a missing or unknown service, a bad file."""


class ClearTextPasswordError(DeploymentError):
    """A deployment file stores a password as clear text (or an unsalted digest) instead of the
    salted scrypt hash ``reckon svc hash-password`` prints."""


class ServiceCallError(ServiceError):
    """A service call failed; ``code`` is the gRPC status code name (e.g. ``"NOT_FOUND"``)."""

    def __init__(self, message: str, code: str = "UNKNOWN") -> None:
        super().__init__(message)
        self.code = code


class DeadlineExceededError(ServiceCallError, TimeoutError):
    """A service call ran past its deadline."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "DEADLINE_EXCEEDED")


class UnauthenticatedError(ServiceCallError):
    """A call without valid credentials reached a service that requires them."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "UNAUTHENTICATED")


class PathEscapeError(ServiceError, PermissionError):
    """A path given to a service's file area points outside it."""


class ServiceUnavailableError(ServiceCallError, ConnectionError):
    """The service could not be reached (not started, crashed, or refusing connections)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "UNAVAILABLE")


class CallCancelledError(ServiceCallError):
    """The call was cancelled by its caller or by the runtime (shutdown, call limit)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "CANCELLED")


class PermissionDeniedError(ServiceCallError, PermissionError):
    """The caller is authenticated but may not perform this call."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "PERMISSION_DENIED")


class ServiceNotFoundError(ServiceError, LookupError):
    """``locate`` asked for a service the unit does not hold or the caller does not require."""


class DatabaseError(ServiceError):
    """A service database could not be migrated or queried (bad migration, bad row type)."""
