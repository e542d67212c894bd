"""The server-less broker: kombu's SQLAlchemy transport on a SQLite file, polling every 0.1 s, pruned.

kombu hands every transport option on to SQLAlchemy's ``create_engine``, so ``polling_interval`` cannot be
given as an option; the class attribute is the one place to set it. With acks_late and a prefetch of one, a
pool process that finishes a job waits up to one polling interval for the next, so the interval bounds the
throughput of short jobs (about 2 jobs/s at kombu's 1 s with two processes). An idle worker polls its three
queues, each poll one short write transaction on var/celery.sqlite3.

The transport marks a message invisible when a consumer takes it and never deletes it (an unacked message
goes back as a new row on a warm shutdown), so the table would only grow: workers prune it (``prune_delivered``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from kombu.transport import sqlalchemy

# Taken messages are kept this long (what a soak or a person looking into a lost job can still read).
KEEP_DELIVERED = timedelta(minutes=5)


class Transport(sqlalchemy.Transport):
    polling_interval = 0.1


def prune_delivered(app, *, keep: timedelta = KEEP_DELIVERED) -> int:
    """Delete messages consumers took more than ``keep`` ago; 0 on any other broker."""
    with app.connection_for_write() as conn:
        if not isinstance(conn.transport, Transport):
            return 0
        channel = conn.default_channel
        message = channel.message_cls
        # kombu stamps the moment a message is taken as naive local time (datetime.now), so compare alike.
        cutoff = datetime.now() - keep  # noqa: DTZ005
        deleted = (
            channel.session.query(message)
            .filter(message.visible.is_(False), message.sent_at < cutoff)
            .delete(synchronize_session=False)
        )
        channel.session.commit()
        return deleted
