"""atlas.broker: a channel whose connection was taken apart fails as a lost connection, not an AttributeError."""

from __future__ import annotations

import pytest
from kombu import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from atlas.broker import Transport


def test_restoring_on_a_channel_whose_connection_was_closed_is_a_connection_error():
    """What Celery does when Redis went away mid-run: close the connection, restore the unacknowledged."""
    conn = Connection("redis://127.0.0.1:1/0", transport=Transport)  # nothing listens: never connects
    channel = Transport.Channel.__new__(Transport.Channel)  # its state only: no connection to Redis
    channel.connection = conn.transport
    conn.transport.client = None  # as kombu leaves it once the connection is closed
    with pytest.raises(RedisConnectionError, match="closed under this channel"):
        channel._connparams()
    assert isinstance(RedisConnectionError("x"), conn.transport.connection_errors)  # Celery reconnects on it


def test_a_live_channel_builds_its_parameters_as_kombus_does():
    conn = Connection("redis://127.0.0.1:6390/3", transport=Transport)
    channel = Transport.Channel.__new__(Transport.Channel)
    channel.connection = conn.transport
    for name in ("max_connections", "socket_timeout", "socket_connect_timeout", "socket_keepalive",
                 "socket_keepalive_options", "health_check_interval", "retry_on_timeout", "client_name",
                 "connection_class", "connection_class_ssl"):
        setattr(channel, name, getattr(Transport.Channel, name, None))
    params = channel._connparams()
    assert (params["host"], params["port"], params["db"]) == ("127.0.0.1", 6390, 3)
