"""Gauges of the library's state: entries in each cache, the verification path in use."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from .names import (
    AUTH_CACHE,
    AUTH_PATH,
    AUTH_RESULT,
    METRIC_ACTIVE_PATH,
    METRIC_CACHE_ENTRIES,
    METRIC_CONFIG_RELOADS,
    PATHS,
)


class Gauges:
    """``auth.cache.entries`` per cache and ``auth.active_path``, read when a reader collects."""

    def __init__(self, meter: metrics.Meter) -> None:
        self._cache_sizes: dict[str, Callable[[], int]] = {}
        self._active_path: Callable[[], str] = lambda: "none"
        self._reloads: Callable[[], dict[str, int]] = dict
        meter.create_observable_gauge(
            METRIC_CACHE_ENTRIES, callbacks=[self._observe_caches], unit="{entry}",
            description="Entries in the verification caches.")
        meter.create_observable_gauge(
            METRIC_ACTIVE_PATH, callbacks=[self._observe_path], unit="1",
            description="1 for the verification path in use (jwks, tokenreview, none).")
        meter.create_observable_counter(
            METRIC_CONFIG_RELOADS, callbacks=[self._observe_reloads], unit="{reload}",
            description="Reloads of AUTH_AUTHENTICATION_CONFIG, by result (applied, refused).")

    def observe_cache(self, name: str, size: Callable[[], int]) -> None:
        self._cache_sizes[name] = size

    def observe_path(self, active_path: Callable[[], str]) -> None:
        self._active_path = active_path

    def observe_reloads(self, reloads: Callable[[], dict[str, int]]) -> None:
        self._reloads = reloads

    def _observe_reloads(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {AUTH_RESULT: result})
                for result, count in self._reloads().items()]

    def _observe_caches(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(size(), {AUTH_CACHE: name}) for name, size in self._cache_sizes.items()]

    def _observe_path(self, options: CallbackOptions) -> Iterable[Observation]:
        active = self._active_path()
        return [Observation(1 if path == active else 0, {AUTH_PATH: path}) for path in PATHS]
