"""Kept importable for code written from earlier docs: server spans are
``compass_auth.tornado.server_spans`` (``add_server_spans``, ``excluded_urls``)."""

from .tornado.server_spans import add_server_spans as add_server_spans
from .tornado.server_spans import excluded_urls as excluded_urls

__all__ = ["add_server_spans", "excluded_urls"]
