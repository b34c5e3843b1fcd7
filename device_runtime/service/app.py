"""The service's FastAPI application: lifespan, routers, body limit, one error handler."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from device_runtime.service.alerts import DriftAlerts
from device_runtime.service.errors import PayloadTooLargeError, ServiceError
from device_runtime.service.jobs import JobRunner
from device_runtime.service.routers import drift_events, examples, health, jobs, model, predict
from device_runtime.service.served import ServedModel
from device_runtime.service.settings import ServiceSettings
from device_runtime.service.store import ExampleStore
from edgeft import __version__
from edgeft.errors import DataError, NotFittedError, StateConflictError
from edgeft.http_errors import error_response, install

_JOB_SHUTDOWN_WAIT_S = 5.0  # a job still running after this is abandoned; its head was not accepted


def create_app(settings: ServiceSettings) -> FastAPI:
    """The service for ``settings``. The model and the examples database open at startup."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = ExampleStore(settings.examples_db)
        alerts = DriftAlerts(settings, store)
        served = ServedModel(settings, store, on_drift=alerts.notify)
        app.state.settings, app.state.store, app.state.served = settings, store, served
        app.state.jobs = JobRunner(served, settings.min_examples)
        app.state.alerts = alerts
        alerts.start(served, app.state.jobs)
        yield
        alerts.close()
        app.state.jobs.wait(_JOB_SHUTDOWN_WAIT_S)
        served.persist()  # the drift window of the predictions since the last save
        store.close()

    # /docs and /redoc from fastapi-offline's packaged Swagger UI and ReDoc, not a CDN: a device is often offline.
    # No validatorUrl: Swagger UI would otherwise load a badge from validator.swagger.io.
    app = FastAPIOffline(
        title="edgeft on-device service",
        version=__version__,
        lifespan=lifespan,
        description="Predict with the personalized head, collect labelled examples, personalize in the background.",
        swagger_ui_parameters={"validatorUrl": None},
    )
    for router in (predict.router, examples.router, jobs.router, model.router, drift_events.router, health.router):
        app.include_router(router)
    install(app, _status)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, whether declared or streamed.

    A streamed body is read here, up to the limit, and replayed to the app: an
    error raised from inside the app's ``receive`` would reach FastAPI's body
    parser, which answers 400 whatever the cause.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            error = PayloadTooLargeError(
                f"The request body is {int(declared)} bytes; this service accepts at most {self.max_bytes}."
            )
            return await error_response(error, error.status)(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                error = PayloadTooLargeError(f"The request body exceeds this service's limit of {self.max_bytes} bytes.")
                return await error_response(error, error.status)(scope, receive, send)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: the disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


def _status(exc: Exception) -> int:
    """The one mapping from edgeft's error hierarchy to the service's HTTP statuses."""
    if isinstance(exc, ServiceError):
        return exc.status
    if isinstance(exc, (NotFittedError, StateConflictError)):
        return 409  # train the head first, or load the state again: a conflict with the state, not a bad request
    if isinstance(exc, DataError):
        return 422
    return 400 if isinstance(exc, ValueError) else 500
