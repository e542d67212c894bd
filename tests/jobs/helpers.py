"""Helpers shared by job tests: checked versions, and faults at the broker and the database."""

from __future__ import annotations

import contextlib

import numpy as np
from django.db import OperationalError, connection
from onnx import TensorProto, helper, numpy_helper

from console.catalog import services as catalog_services
from console.catalog.uploads import temporary_upload
from console.models import ModelVersion
from jobs.models import Job
from jobs.tasks import execute_job
from tests.conftest import make_mlp


def unrunnable_model_bytes() -> bytes:
    """Valid ONNX that fails at run time: Reshape to a fixed 3 elements while each input row has 8."""
    shape = numpy_helper.from_array(np.array([3], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "bad-reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        [shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def uploaded_version(model, payload: bytes, user=None) -> ModelVersion:
    with temporary_upload("m.onnx", payload) as upload:
        return catalog_services.upload_version(model=model, uploaded=upload, user=user)


def ready_version(model, payload: bytes | None = None) -> ModelVersion:
    """Upload and run the check job, as a worker would; asserts the version is ready."""
    version = uploaded_version(model, payload if payload is not None else make_mlp().SerializeToString())
    execute_job(Job.objects.get(input_version=version, kind="check").pk)
    version.refresh_from_db()
    assert version.state == ModelVersion.State.READY, version.error
    return version


def run_pending_checks() -> None:
    for job in Job.objects.filter(kind="check", state="queued"):
        execute_job(job.pk)


# A loopback port where nothing listens: connecting is refused at once, as when the broker is down.
UNREACHABLE_BROKER_URL = "redis://127.0.0.1:1/0"


@contextlib.contextmanager
def broker_down():
    """Point the Celery app at a broker that refuses connections, and back to the real one afterwards.

    The app keeps pooled connections (and producers) to the broker it first used; they are set aside so the
    next send really connects, and put back on the way out.
    """
    from console.celery import app

    saved = app.conf.broker_url, app._pool, app.amqp._producer_pool
    app.conf.broker_url, app._pool, app.amqp._producer_pool = UNREACHABLE_BROKER_URL, None, None
    try:
        yield
    finally:
        app.conf.broker_url, app._pool, app.amqp._producer_pool = saved


@contextlib.contextmanager
def database_fails_on(table: str, *, times: int | None = None, message: str = "server closed the connection"):
    """Queries of this thread that touch ``table`` raise OperationalError (``times`` times, or every time), as when
    the database goes away under a worker."""
    failures = {"left": times}

    def wrapper(execute, sql, params, many, context):
        if f'"{table}"' in sql and failures["left"] != 0:
            if failures["left"] is not None:
                failures["left"] -= 1
            raise OperationalError(message)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield


@contextlib.contextmanager
def messages_sent():
    """The run_job messages the broker accepted while the block ran, as (job id, queue); purged afterwards so
    no worker ever runs them."""
    from celery.signals import after_task_publish

    from console.celery import app
    from jobs.registry import ALL_QUEUES

    sent: list[tuple[int, str]] = []

    def record(sender=None, body=None, routing_key=None, **kwargs):
        if sender == "jobs.tasks.run_job":
            sent.append((body[1]["job_id"], routing_key))

    after_task_publish.connect(record, weak=False)
    try:
        yield sent
    finally:
        after_task_publish.disconnect(record)
        if sent:
            with app.connection_for_write() as conn:
                for queue in ALL_QUEUES:
                    with contextlib.suppress(Exception):  # a queue never declared has nothing to purge
                        conn.default_channel.queue_purge(queue)
