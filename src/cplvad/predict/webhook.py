"""``--webhook URL``: every live event line POSTed as JSON, without ever holding up scoring.

Events go into a bounded queue that one background thread empties; a full queue (the endpoint is down or
slower than the events) drops the new event and says so. Each POST waits at most ``timeout`` seconds and
is retried ``retries`` times (tenacity) with doubling back-off (0.5, 1, 2, ... s) on a connection error, a
timeout or an HTTP status other than 2xx; an event that still fails is reported on the log and dropped. At
the end ``close`` gives the queue a last few seconds, then stops the retries (a back-off it cuts short is
followed by one last attempt) and reports what was not delivered.
"""

from __future__ import annotations

import json
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential,
)

from cplvad.redact import strip_credentials

_STOP = object()


class _Undelivered(Exception):
    """One POST failed; the message says why in a few words."""


@dataclass
class WebhookStats:
    delivered: int = 0
    failed: int = 0
    """Given up after every retry."""
    dropped: int = 0
    """Not even tried: the queue was full, or still held events at the end."""


class Webhook:
    def __init__(
        self,
        url: str,
        log: Callable[[str], None],
        *,
        timeout: float = 5.0,
        retries: int = 3,
        queue_size: int = 1000,
        backoff: float = 0.5,
    ) -> None:
        self.url = url
        self.display = strip_credentials(url)
        self.log = log
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.stats = WebhookStats()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cplvad-webhook", daemon=True)
        self._thread.start()

    def post(self, payload: dict[str, Any]) -> None:
        """Queue one event (never blocks)."""
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            self.stats.dropped += 1
            self.log(
                f"webhook {self.display}: {self._queue.maxsize} events are waiting; an event was dropped"
            )

    def close(self, wait: float = 5.0) -> WebhookStats:
        """Deliver what is queued within ``wait`` seconds, then stop (events still queued are dropped)."""
        with self._queue.all_tasks_done:
            self._queue.all_tasks_done.wait_for(lambda: not self._queue.unfinished_tasks, timeout=wait)
        self._abandon.set()
        self.stats.dropped += self._drain()
        self._queue.put(_STOP)
        self._thread.join(timeout=self.timeout + 1)
        return self.stats

    def _drain(self) -> int:
        count = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return count
            count += item is not _STOP
            self._queue.task_done()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            self._deliver(item)
            self._queue.task_done()

    def _deliver(self, payload: dict[str, Any]) -> None:
        retrying = Retrying(
            retry=retry_if_exception_type(_Undelivered),
            stop=stop_after_attempt(self.retries + 1) | stop_when_event_set(self._abandon),
            wait=wait_exponential(multiplier=self.backoff),
            sleep=self._abandon.wait,  # close() cuts a back-off short
            reraise=True,
        )
        try:
            retrying(self._post, json.dumps(payload).encode())
        except _Undelivered as exc:
            self.stats.failed += 1
            self.log(
                f"webhook {self.display}: gave up on a {payload.get('type', 'event')} line after "
                f"{retrying.statistics['attempt_number']} attempt(s) ({exc})"
            )
            return
        self.stats.delivered += 1

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise _Undelivered(f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise _Undelivered(str(getattr(exc, "reason", exc))) from None
