"""offload inside an InterpreterPool worker interpreter.

Subinterpreters cannot load offload's native core, yet a module whose functions run in a
worker interpreter often imports offload (the module that offloads them, say). There
``import offload`` still works: the exceptions are the real ones, :func:`cancelled` is false,
and every other public name is a stand-in that raises a clear error when used.
"""

from typing import Any, Dict, NoReturn

_CLASSES = (
    "Channel",
    "ChannelStats",
    "Executor",
    "Future",
    "InterpreterPool",
    "Operation",
    "Pool",
    "PoolStats",
    "ProcessPool",
    "Selected",
)
_FUNCTIONS = ("default_pool", "run", "select", "select_blocking", "select_nowait")


def _refuse(name: str) -> NoReturn:
    raise RuntimeError(
        f"offload.{name} cannot be used inside an InterpreterPool worker: worker interpreters "
        "cannot load offload's native core. Return the data to the caller and offload there"
    )


def _stand_in_class(name: str) -> type:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        _refuse(name)

    def __class_getitem__(cls: type, item: Any) -> type:
        return cls

    return type(
        name,
        (),
        {
            "__init__": __init__,
            "__class_getitem__": classmethod(__class_getitem__),
            "__module__": "offload",
            "__doc__": f"Unavailable in a worker interpreter: see offload.{name}.",
        },
    )


def _stand_in_function(name: str) -> Any:
    def stand_in(*args: Any, **kwargs: Any) -> NoReturn:
        _refuse(name)

    stand_in.__name__ = stand_in.__qualname__ = name
    stand_in.__module__ = "offload"
    return stand_in


def cancelled() -> bool:
    """False: calls in a worker interpreter cannot be asked to stop."""
    return False


def install(namespace: Dict[str, Any]) -> None:
    """Defines the stand-ins in the offload package's namespace."""
    for name in _CLASSES:
        namespace[name] = _stand_in_class(name)
    for name in _FUNCTIONS:
        namespace[name] = _stand_in_function(name)
    namespace["cancelled"] = cancelled
