"""Package data: default configs, CRDs and service units, read with :func:`read_text`."""

from importlib import resources


def read_text(name: str) -> str:
    """The text of template ``name`` (a path relative to this package, e.g. ``config/x.yaml``)."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
