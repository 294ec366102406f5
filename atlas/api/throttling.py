"""Rate limits, read from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` at request time.

DRF's classes copy the rates when they are imported; these read them when
they are used, so a changed setting (an override in a test, a reload) takes
effect. Counts live in Django's cache: configure a shared cache (Redis) in
production so every web process counts together.
"""

from __future__ import annotations

from rest_framework import throttling
from rest_framework.settings import api_settings


class _LiveRates:
    scope: str

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class AnonRateThrottle(_LiveRates, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(_LiveRates, throttling.UserRateThrottle):
    pass


class RunRateThrottle(_LiveRates, throttling.UserRateThrottle):
    """Triggering runs costs a worker: its own, lower limit (scope ``run``)."""

    scope = "run"
