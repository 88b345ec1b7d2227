"""The library's version (its own module, so that modules inside the package can read it while
``compass_auth/__init__.py`` is still importing them)."""

__version__ = "0.2.0"
