"""Which Celery workers are alive, per queue: each worker writes a heartbeat row; health and pages read them.

Its own small app (label ``workers``) so the heartbeat table has its own migrations.
"""
