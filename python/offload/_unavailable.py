"""offload inside an InterpreterPool worker interpreter.

Subinterpreters cannot load offload's native core, yet a module whose functions run in a
worker interpreter often imports offload (the module that offloads them, say). There
``import offload`` still works: the exceptions are the real ones, :func:`cancelled` is false,
and every other public name is a stand-in class that raises a clear error when called or
instantiated (it can still be subclassed, subscripted and used in annotations).
"""

from typing import Any, Dict, Iterable, NoReturn


def _refuse(name: str) -> NoReturn:
    raise RuntimeError(
        f"offload.{name} cannot be used inside an InterpreterPool worker: worker interpreters "
        "cannot load offload's native core. Return the data to the caller and offload there"
    )


def _stand_in(name: str) -> type:
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


def cancelled() -> bool:
    """False: calls in a worker interpreter cannot be asked to stop."""
    return False


def install(namespace: Dict[str, Any], names: Iterable[str]) -> None:
    """Defines a stand-in for each of ``names`` not yet in the package's namespace."""
    for name in names:
        if name not in namespace:
            namespace[name] = cancelled if name == "cancelled" else _stand_in(name)
