"""The Redis broker transport (kombu's), with the fault that killed workers when Redis restarted mended.

When Redis goes away while a worker holds unacknowledged messages (``acks_late``: every
run a thread of the pool is executing, or a message whose ack failed), Celery closes the
lost connection; closing its channel restores the unacknowledged messages, for which
kombu builds a new connection pool from a connection already taken apart — an
``AttributeError`` in ``_connparams``. Celery takes that for a fatal error ("Unrecoverable
error") and the worker exits instead of reconnecting (``pipelines/tests/test_faults.py``,
the broker stopped mid-run). Here it is what it is, a lost connection: the channel closes,
the worker reconnects once the broker is back, and Redis hands the messages back after the
visibility timeout (Atlas's reaper does not wait for it: the runs' state is in the database).

``CELERY_BROKER_TRANSPORT`` names it for ``redis://`` brokers.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict:
        try:
            return super()._connparams(asynchronous=asynchronous)
        except AttributeError as exc:
            if self.connection is not None and getattr(self.connection, "client", None) is not None:
                raise
            raise RedisConnectionError("The broker connection was closed under this channel.") from exc


class Transport(kombu_redis.Transport):
    Channel = Channel
