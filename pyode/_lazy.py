"""Public names that a package imports from its private modules on first use."""

import importlib


def lazy_public_names(namespace: dict, public: dict[str, str]) -> tuple:
    """A package's module `__getattr__` and `__dir__` (PEP 562) for the names in `public`.

    `namespace` is the package's `globals()`; `public` maps each name to the module (relative to
    the package) that defines it. A name is imported on first use and then kept in `namespace`.
    """
    package = namespace["__name__"]

    def __getattr__(name: str):
        if name not in public:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(public[name], package), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted([*namespace, *public])

    return __getattr__, __dir__
