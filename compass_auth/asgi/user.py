"""``request.user`` of an admitted caller (Starlette's ``BaseUser``)."""

from __future__ import annotations

from starlette.authentication import BaseUser

from ..core.identity import Identity


class ServiceAccountUser(BaseUser):
    """The verified service account behind ``request.user``: ``caller`` is its ``Identity``;
    ``identity`` and ``display_name`` are its subject (Starlette's contract: a string)."""

    __slots__ = ("caller",)

    def __init__(self, caller: Identity) -> None:
        self.caller = caller

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.caller.subject

    @property
    def identity(self) -> str:
        return self.caller.subject
