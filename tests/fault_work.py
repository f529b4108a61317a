"""Work for the fault tests (BaseExceptions from calls, hostile objects: the contract suites,
test_executor.py, test_channel.py, test_stress.py...) that must be importable by name:
ProcessPool worker processes, InterpreterPool worker interpreters, Dask's workers and
subprocesses import it from here. Standard library only, module-level functions and classes,
picklable."""

from __future__ import annotations

from typing import Any, Dict, Tuple, Type


class CustomBase(BaseException):
    """A BaseException subclass of the user's own, outside the Exception hierarchy."""


BASE_EXCEPTIONS: Dict[str, Type[BaseException]] = {
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": GeneratorExit,
    "CustomBase": CustomBase,
}


def raise_base(name: str) -> None:
    """Raises the BaseException subclass called `name`."""
    raise BASE_EXCEPTIONS[name](f"{name} from the call")


class Hostile:
    """An object that must never be compared or hashed: __eq__, __ne__ and __hash__ raise."""

    def __init__(self, tag: int = 0) -> None:
        self.tag = tag

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("offload compared a Hostile object (__eq__)")

    def __ne__(self, other: object) -> bool:
        raise RuntimeError("offload compared a Hostile object (__ne__)")

    def __hash__(self) -> int:
        raise RuntimeError("offload hashed a Hostile object (__hash__)")

    def __reduce__(self) -> Tuple[Any, Tuple[int]]:
        return (type(self), (self.tag,))


class HostileCallable(Hostile):
    """A callable that must never be compared or hashed; returns a Hostile tagged with the
    number of arguments it got."""

    def __call__(self, *args: Any, **kwargs: Any) -> Hostile:
        return Hostile(len(args) + len(kwargs))


class HostileError(Exception):
    """An exception that must never be compared or hashed."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("offload compared a HostileError (__eq__)")

    def __ne__(self, other: object) -> bool:
        raise RuntimeError("offload compared a HostileError (__ne__)")

    def __hash__(self) -> int:
        raise RuntimeError("offload hashed a HostileError (__hash__)")


def tag_of(item: Hostile) -> int:
    return item.tag


def make_hostile(tag: int) -> Hostile:
    return Hostile(tag)


def raise_hostile(message: str) -> None:
    raise HostileError(message)
