"""Authentication: Basic built in (users from the deployment's ``[auth] users``), bearer tokens by a
hook (``[auth] bearer = "module:function"``).

The header is the HTTP one (``authorization: Basic base64(user:password)`` or ``Bearer TOKEN``),
sent as gRPC metadata or as an HTTP header, so the same credentials work with grpcurl, curl and
reckon clients. A service with ``auth`` set refuses calls without valid credentials of a scheme
it accepts; a service without ``auth`` takes every call, and a header of a scheme nobody here
checks leaves its caller anonymous there (a proxy's token is no reason to refuse).

Passwords are stored as salted scrypt hashes (``hash_password``, ``reckon svc hash-password``)
and nothing else: clear text and unsalted digests are refused when the deployment is loaded, so a
deployment file never holds a password anyone could read and reuse.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping

from reckon.errors import ClearTextPasswordError, DeploymentError, UnauthenticatedError
from reckon.service.context import User

#: What a service's ``auth`` may say: the schemes it accepts.
SCHEMES = {"basic": ("basic",), "bearer": ("bearer",), "any": ("basic", "bearer")}

# scrypt's cost: 2**14 x 8 x 1 takes ~50 ms and 16 MiB once per caller (good headers are cached).
_N, _R, _P = 2**14, 8, 1

BearerHook = Callable[[str], "str | None"]


def basic_header(user: str, password: str) -> str:
    """The ``authorization`` header value for ``user``/``password``."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A salted scrypt hash to store in ``[auth] users``: ``scrypt$n$r$p$salt$hash`` (base64)."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_stored(user: str, stored: str) -> None:
    """Refuse, when the deployment loads, a stored password that is not a salted scrypt hash:
    clear text, an unsalted digest, or a malformed hash."""
    fix = (
        "run `reckon svc hash-password` (or call reckon.service.auth.hash_password) and store "
        f'what it prints: users = {{ {user} = "scrypt$16384$8$1$..." }}'
    )
    if stored.startswith("sha256:"):
        raise ClearTextPasswordError(
            f"[auth] users: {user!r} has an unsalted sha256 digest, which is refused; {fix}"
        )
    if not stored.startswith("scrypt$"):
        raise ClearTextPasswordError(
            f"[auth] users: {user!r} has a clear-text password, which is refused; {fix}"
        )
    parts = stored.split("$")
    try:
        ok = len(parts) == 6 and all(int(x) > 0 for x in parts[1:4])
        ok = ok and all(base64.b64decode(x, validate=True) for x in parts[4:])
    except (ValueError, binascii.Error):
        ok = False
    if not ok:
        raise DeploymentError(
            f"[auth] users: {user!r} has a malformed scrypt hash; expected "
            f"scrypt$n$r$p$salt$hash as `reckon svc hash-password` prints; {fix}"
        )


def _matches(stored: str, password: str) -> bool:
    _, n, r, p, salt, digest = stored.split("$")  # the shape check_stored let through
    want = base64.b64decode(digest)
    got = hashlib.scrypt(
        password.encode(),
        salt=base64.b64decode(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=len(want),
        maxmem=2**27,
    )
    return hmac.compare_digest(got, want)


class Authenticator:
    """Checks headers against the unit's users and bearer hook; caches good headers."""

    def __init__(self, users: Mapping[str, str], bearer: BearerHook | None = None) -> None:
        for user, stored in users.items():
            check_stored(user, stored)
        self._users = dict(users)
        self._bearer = bearer
        self._good: dict[str, User] = {}

    def check(self, header: str | None, accept: str | None = "basic") -> User | None:
        """The user a header names; None without a header, or (``accept`` None: the service
        takes anonymous calls) with a scheme nobody checks. Raises on bad credentials."""
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        scheme = scheme.lower()
        checked = ("basic", "bearer") if self._bearer is not None else ("basic",)
        if scheme not in checked or (accept is not None and scheme not in SCHEMES[accept]):
            if accept is None:
                return None
            wanted = " or ".join(s.title() for s in SCHEMES[accept] if s in checked)
            raise UnauthenticatedError(f"authorization header must be {wanted} credentials")
        if scheme == "bearer":  # asked every time: tokens expire and are revoked
            return self._token(token)
        cached = self._good.get(header)
        if cached is None:
            cached = self._good[header] = self._basic(token)
        return cached

    async def check_async(self, header: str | None, accept: str | None = "basic") -> User | None:
        """:meth:`check` for servers: a Basic password not seen before is verified in a worker
        thread (scrypt takes ~50 ms of CPU), so the event loop keeps serving meanwhile."""
        if header is None or header in self._good or header[:6].lower() != "basic ":
            return self.check(header, accept)
        return await asyncio.to_thread(self.check, header, accept)

    def _basic(self, token: str) -> User:
        if not token:
            raise UnauthenticatedError("authorization header is not 'Basic <base64(user:pass)>'")
        try:
            user, sep, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise UnauthenticatedError("authorization header is not valid base64") from None
        if not sep:
            raise UnauthenticatedError("basic credentials must be 'user:password'")
        stored = self._users.get(user)
        if stored is None or not _matches(stored, password):
            raise UnauthenticatedError(f"unknown user or wrong password for {user!r}")
        return User(user)

    def _token(self, token: str) -> User:
        assert self._bearer is not None
        try:
            name = self._bearer(token.strip())
        except Exception as exc:
            raise UnauthenticatedError(
                f"the bearer token check failed: {type(exc).__name__}: {exc}"
            ) from None
        if not name:
            raise UnauthenticatedError("the bearer token was refused")
        return User(str(name))
