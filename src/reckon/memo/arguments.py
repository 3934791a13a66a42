"""How a call's arguments become the argument half of its request id.

Two calls that mean the same call must key the same: ``f(1)``, ``f(x=1)`` and ``f(1, 2)`` where 2
is the default. Binding through :class:`inspect.Signature` says so but costs microseconds per
call, so the signature is read once into tables and the common case (positional arguments only,
maybe leaving trailing defaults out) is bound by slicing. What is left out of the key
(``ignore=``) is dropped here; a ``key=`` function replaces all of it. A class passed as ``cls``
keys by its name and data attributes, so a classmethod recomputes when class-level data changes.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterable
from typing import Any

from reckon.errors import ConfigurationError, UnhashableArgumentError
from reckon.memo.hashing import hash_value

__all__ = ["PLAIN", "Arguments", "ClassState"]

#: Argument types whose equal values always hash equal (so the argument tuple can key an id).
PLAIN = frozenset({int, str, bytes, bool, type(None)})

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_DESCRIPTORS = (classmethod, staticmethod, property, types.MemberDescriptorType)


class ClassState:
    """The key of a class passed as ``cls``: its name and the data attributes it holds, so a
    classmethod recomputes when class-level data changes."""

    __slots__ = ("cls",)

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __reckon_hash__(self) -> object:
        cls = self.cls
        state: list[tuple[str, bytes]] = []
        for klass in reversed(cls.__mro__[:-1]):
            for attr, value in vars(klass).items():
                if attr.startswith("__") or callable(value) or isinstance(value, _DESCRIPTORS):
                    continue
                try:
                    state.append((attr, hash_value(value, path=f"{cls.__qualname__}.{attr}")))
                except UnhashableArgumentError:
                    continue
        return ("reckon.class", cls.__module__, cls.__qualname__, tuple(sorted(state)))


class Arguments:
    """A function's parameters read once, to turn each call's arguments into a digest.

    ``qualname`` and ``name`` are passed per call (for messages only): a memoized method learns
    its class's name after it was built.
    """

    __slots__ = (
        "classmethod",
        "ignore",
        "keep",
        "kept_names",
        "key",
        "names",
        "nparams",
        "signature",
        "simple",
        "tails",
    )

    def __init__(
        self,
        func: Callable[..., Any],
        ignore: Iterable[str],
        key: Callable[..., Any] | None,
        is_classmethod: bool,
        qualname: str,
    ) -> None:
        self.signature = inspect.signature(func)
        params = list(self.signature.parameters.values())
        self.names = tuple(p.name for p in params)
        ignored = set([ignore] if isinstance(ignore, str) else ignore)
        unknown = ignored - set(self.names)
        if unknown:
            raise ConfigurationError(
                f"ignore={sorted(unknown)} names no parameter of {qualname}"
                f"{self.signature}; ignore takes parameter names"
            )
        self.ignore = frozenset(ignored)
        self.keep = tuple(i for i, n in enumerate(self.names) if n not in ignored)
        self.kept_names = tuple(self.names[i] for i in self.keep)
        self.simple = all(p.kind in _POSITIONAL for p in params)
        self.nparams = len(params)
        tails: list[tuple[Any, ...] | None] = []
        for k in range(len(params) + 1):
            rest = params[k:]
            if all(p.default is not inspect.Parameter.empty for p in rest):
                tails.append(tuple(p.default for p in rest))
            else:
                tails.append(None)
        #: Per number of positional arguments given: the defaults that complete the call, or
        #: None when a parameter without a default would be missing.
        self.tails = tuple(tails)
        self.key = key
        #: The first argument is a class, keyed by its data (set late when ``@classmethod`` is
        #: applied over ``@memoize``).
        self.classmethod = is_classmethod

    def canonical(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], qualname: str
    ) -> tuple[Any, ...]:
        """The arguments of a call, one per kept parameter, defaults filled in."""
        if not kwargs and self.simple:
            n = len(args)
            if n == self.nparams:
                canon = args
            elif n < self.nparams and (tail := self.tails[n]) is not None:
                canon = args + tail
            else:
                canon = self.bind(args, kwargs, qualname)
        else:
            canon = self.bind(args, kwargs, qualname)
        if self.classmethod and canon:
            canon = (ClassState(canon[0]), *canon[1:])
        if self.ignore:
            canon = tuple(canon[i] for i in self.keep)
        return canon

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any], qualname: str) -> tuple[Any, ...]:
        """The slow, general binding (keywords, varargs): a wrong call raises TypeError here, as
        calling the function would."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{qualname}(): {exc}") from None
        bound.apply_defaults()
        arguments = bound.arguments
        return tuple(arguments[n] for n in self.names)

    def digest(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], name: str, qualname: str
    ) -> bytes:
        """The argument half of a call's id; an argument that cannot be hashed is named in the
        error, with the two ways out."""
        if self.key is not None:
            try:
                return hash_value(("reckon.memo.key", self.key(*args, **kwargs)), path="key()")
            except UnhashableArgumentError as exc:
                raise UnhashableArgumentError(
                    f"{name}: the key function returned a value that cannot be hashed: {exc}"
                ) from None
        canon = self.canonical(args, kwargs, qualname)
        try:
            return hash_value(canon, path="args")
        except UnhashableArgumentError as exc:
            detail = str(exc)
            names = self.kept_names if len(canon) == len(self.kept_names) else ()
            for argname, value in zip(names, canon, strict=False):
                try:
                    hash_value(value, path=argname)
                except UnhashableArgumentError as inner:
                    detail = str(inner)
                    break
            raise UnhashableArgumentError(
                f"{name}: {detail} To leave an argument out of the key use "
                f"memoize(ignore=[...]); to key it yourself use memoize(key=...)."
            ) from None
