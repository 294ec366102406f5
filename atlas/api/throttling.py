"""Rate limits, read from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` at request time.

DRF's classes copy the rates when they are imported; these read them when
they are used, so a changed setting (an override in a test, a reload) takes
effect. Counts live in Django's cache: configure a shared cache (Redis) in
production so every web process counts together.

A count, not a history: DRF's throttles keep every request time of the
window in one cached list, read and written whole on every request (at
1200/min, ten kilobytes each way; at a benchmark's generous rate, hundreds).
Here a window starts with a client's first request and lasts the rate's
period; each request adds one to the window's counter (``add`` then ``incr``:
constant work, atomic across processes); the client is refused once the
count passes the rate, until the window ends (``Retry-After``: what is left
of it). Burstier than a sliding window at the edge of two windows, never
more than twice the rate over one period.
"""

from __future__ import annotations

import math

from rest_framework import throttling
from rest_framework.settings import api_settings


class _Counted:
    scope: str

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        seconds = max(1, math.ceil(self.duration))
        count_key, start_key = f"{self.key}:n", f"{self.key}:t0"
        if self.cache.add(count_key, 1, seconds):  # the first request of a window
            self.cache.set(start_key, self.now, seconds)
            count = 1
        else:
            try:
                count = self.cache.incr(count_key)
            except ValueError:  # the window ended between the two calls: this request starts the next
                self.cache.set(count_key, 1, seconds)
                self.cache.set(start_key, self.now, seconds)
                count = 1
        if count <= self.num_requests:
            return True
        started = self.cache.get(start_key)
        self._wait = self.duration - (self.now - started) if started is not None else self.duration
        return False

    def wait(self) -> float | None:
        return max(0.0, getattr(self, "_wait", self.duration))


class AnonRateThrottle(_Counted, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(_Counted, throttling.UserRateThrottle):
    pass


class RunRateThrottle(_Counted, throttling.UserRateThrottle):
    """Triggering runs costs a worker: its own, lower limit (scope ``run``)."""

    scope = "run"
