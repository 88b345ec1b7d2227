"""Kept importable for code written from earlier docs: the handler is
``compass_auth.tornado.websocket.AuthenticatedWebSocketHandler``."""

from .tornado.websocket import AuthenticatedWebSocketHandler as AuthenticatedWebSocketHandler

__all__ = ["AuthenticatedWebSocketHandler"]
