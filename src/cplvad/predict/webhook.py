"""``--webhook URL``: every live event line POSTed as JSON, without ever holding up scoring.

Events go into a bounded queue that one background thread empties; a full queue (the endpoint is down or
slower than the events) drops the new event and says so. Each POST waits at most ``timeout`` seconds and
is retried ``retries`` times with doubling back-off (0.5, 1, 2, ... s) on a connection error, a timeout or
an HTTP status other than 2xx; an event that still fails is reported on the log and dropped. At the end
``close`` gives the queue a last few seconds, then reports what was not delivered.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cplvad.redact import strip_credentials

_STOP = object()


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
        deadline = time.monotonic() + wait
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
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
        body = json.dumps(payload).encode()
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt and self._abandon.wait(self.backoff * 2 ** (attempt - 1)):
                break
            try:
                request = urllib.request.Request(
                    self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                self.stats.delivered += 1
                return
            except urllib.error.HTTPError as exc:
                reason = f"HTTP {exc.code} {exc.reason}"
            except (urllib.error.URLError, OSError) as exc:
                reason = str(getattr(exc, "reason", exc))
        self.stats.failed += 1
        self.log(
            f"webhook {self.display}: gave up on a {payload.get('type', 'event')} line after "
            f"{self.retries + 1} attempt(s) ({reason})"
        )
