"""The example microservice built on compass_auth: ``python -m service serve|demo|call``."""

from compass_auth.version import __version__

__all__ = ["__version__"]
