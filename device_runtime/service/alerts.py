"""Drift alerts of the served model: kept for polling, posted to the app's loopback webhook, and the retraining policy.

The served Personalizer calls :meth:`DriftAlerts.notify` from inside a
prediction when its automatic check finds drift after one that did not. That
call only queues the report; one worker thread then records the event, saves
the monitor with the state (so the window survives a crash), posts the event
to the webhook and applies the policy: with ``retrain_on_drift = N`` set and at
least N labelled examples stored since the last job, it starts a
personalization job, whose new head serves only if the guard accepts it.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import queue
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from device_runtime.service.errors import FieldError, JobConflictError
from device_runtime.service.jobs import JOB_COUNT_META, JobRunner, now_iso
from device_runtime.service.served import ServedModel
from device_runtime.service.settings import ServiceSettings
from device_runtime.service.store import ExampleStore

KEEP_EVENTS = 100  # older events are dropped; memory stays bounded on a device
WEBHOOK_TIMEOUT_S = 5.0  # a webhook that does not answer in time is marked failed; the next event tries again
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")  # the service posts to apps on this device only
WEBHOOK_META = "drift_webhook"  # store meta key: the webhook survives restarts


@dataclasses.dataclass
class DriftEvent:
    """One alert: the drift report that raised it and what was done about it."""

    id: int
    created: str
    report: dict[str, Any]
    webhook: str = "none registered"  # "delivered", "failed: why", or "none registered"
    policy: str = "off"  # what the retraining policy did, in words
    job_id: str | None = None  # the personalization job the policy started, if any


class DriftAlerts:
    """The service's drift events, their webhook and the policy. Start with :meth:`start`, stop with :meth:`close`."""

    def __init__(self, settings: ServiceSettings, store: ExampleStore) -> None:
        self.settings, self.store = settings, store
        self._events: collections.deque[DriftEvent] = collections.deque(maxlen=KEEP_EVENTS)
        self._next_id = 1
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self, served: ServedModel, jobs: JobRunner) -> None:
        """Handle queued alerts on a worker thread from now on."""
        self._thread = threading.Thread(target=self._work, args=(served, jobs), name="drift-alerts", daemon=True)
        self._thread.start()

    def notify(self, report: dict[str, Any]) -> None:
        """The served Personalizer's ``on_drift``: queue the report and return at once."""
        self._queue.put(report)

    def events(self, after: int = 0) -> list[DriftEvent]:
        """Events with an id above ``after``, oldest first (poll with the last id seen)."""
        return [e for e in list(self._events) if e.id > after]

    @property
    def webhook(self) -> str | None:
        return self.store.get_meta(WEBHOOK_META) or None

    def set_webhook(self, url: str | None) -> None:
        """Post future events to ``url`` (None: stop posting).

        Raises:
            FieldError: the URL is not http(s) on a loopback address.
        """
        if url is not None:
            check_webhook(url)
        self.store.set_meta(WEBHOOK_META, url or "")

    def close(self) -> None:
        """Handle what is queued, then stop the worker."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()

    def _work(self, served: ServedModel, jobs: JobRunner) -> None:
        while (report := self._queue.get()) is not None:
            event = DriftEvent(self._next_id, now_iso(), report)
            self._next_id += 1
            try:
                served.persist()
                event.policy, event.job_id = self._apply_policy(jobs)
            except Exception as e:  # noqa: BLE001 - one event's failure is recorded in it; the thread serves the next
                event.policy = f"failed: {type(e).__name__}: {e}"
            event.webhook = self._post(event)
            self._events.append(event)  # pollable once whole: a poll never reads a webhook or policy not yet done

    def _apply_policy(self, jobs: JobRunner) -> tuple[str, str | None]:
        needed = self.settings.retrain_on_drift
        if needed is None:
            return "off", None
        new = self.store.count() - int(self.store.get_meta(JOB_COUNT_META, "0"))
        if new < needed:
            return f"no job: {new} labelled example(s) stored since the last job, {needed} needed", None
        try:
            job = jobs.start("fit", {}, trigger="drift")
        except (JobConflictError, FieldError) as e:
            return f"no job: {e}", None
        return f"started job {job.id} on {new} new labelled example(s); its head serves only if the guard accepts it", job.id

    def _post(self, event: DriftEvent) -> str:
        url = self.webhook
        if url is None:
            return "none registered"
        body = json.dumps({"event": "drift", **dataclasses.asdict(event)}).encode()
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            check_webhook(url)  # a URL stored by an older version may not pass today's check
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S):
                return "delivered"
        except (urllib.error.URLError, OSError, ValueError) as e:  # http.client.InvalidURL is a ValueError
            return f"failed: {e}"


def check_webhook(url: str) -> None:
    """A webhook is an http(s) URL on a loopback address, with a valid port, in printable ASCII without spaces.

    Raises:
        FieldError: it is not.
    """
    problem = None
    try:
        parsed = urllib.parse.urlsplit(url)
        parsed.port  # noqa: B018 - reading it checks it: a port out of 0..65535 or not a number raises ValueError
    except ValueError as e:  # also an unclosed "[" of an IPv6 address
        problem, parsed = str(e), urllib.parse.urlsplit("")
    if not url.isascii() or any(c.isspace() or not c.isprintable() for c in url):
        problem = "it holds spaces, control or non-ASCII characters (percent-encode them)"
    elif parsed.scheme not in ("http", "https") or parsed.hostname not in LOOPBACK_HOSTS:
        problem = problem or "it is not an http(s) URL on this device"
    if problem:
        raise FieldError(
            "url",
            f"{url!r} is no webhook URL: {problem}. Use an http(s) URL on a loopback address "
            f"({', '.join(LOOPBACK_HOSTS)}), e.g. http://127.0.0.1:9000/drift",
        )
