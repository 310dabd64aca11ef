"""What keeps one client from wearing the API server down: a backoff for failed authentication
per client address, a request log that coalesces repeated refusals into one bounded line, and
an HTTP protocol that closes connections whose request does not arrive in time.

All state is bounded: at most MAX_CLIENTS addresses are remembered (least recently seen go
first), so a flood of addresses costs a fixed amount of memory.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

MAX_CLIENTS = 4096  # addresses remembered by the throttle and the refusal log
MAX_FIELD = 300  # characters of any client-influenced text kept in a log line


def clip(value, limit: int = MAX_FIELD):
    """A log field cut to `limit` characters (what a client sent must not size our lines)."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…"
    return value


class AuthThrottle:
    """Failed authentications per client address. The first `free` failures cost nothing;
    after that each failure locks the address for a delay that doubles (1 s, 2 s, 4 s… up to
    `max_delay`); failures are forgotten after `forget_s` without one.

    A valid key still passes while its address is locked: on 127.0.0.1 every local client
    shares one address, and one client's wrong key must not lock the others out. What slows
    guessing is that refusals to a locked address are held (`hold`) with at most `max_held`
    held at once per address; past that a locked address is refused without its key being
    checked at all, so it gets at most `max_held` verdicts per hold."""

    def __init__(
        self, free=5, max_delay=300.0, forget_s=900.0, max_held=4, max_clients=MAX_CLIENTS
    ):
        self.free, self.max_delay, self.forget_s = free, max_delay, forget_s
        self.max_held, self.max_clients = max_held, max_clients
        self._clients: OrderedDict[str, list] = OrderedDict()  # address → [failures, until, last]
        self.held: dict[str, int] = {}
        self._lock = threading.Lock()

    def _entry(self, client: str, now: float) -> list:
        entry = self._clients.get(client)
        if entry is None or now - entry[2] > self.forget_s:
            entry = [0, 0.0, now]
        self._clients[client] = entry
        self._clients.move_to_end(client)
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        return entry

    def locked_for(self, client: str, now: float | None = None) -> float:
        """Seconds the address stays locked (0: not locked)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._clients.get(client)
            return max(0.0, entry[1] - now) if entry else 0.0

    def fail(self, client: str, now: float | None = None) -> float:
        """Count a failure; returns the seconds the address is now locked (0: not yet)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._entry(client, now)
            entry[0] += 1
            entry[2] = now
            over = entry[0] - self.free
            if over <= 0:
                return 0.0
            delay = min(self.max_delay, 2.0 ** (over - 1))
            entry[1] = max(entry[1], now + delay)
            return entry[1] - now

    def saturated(self, client: str) -> bool:
        """Whether the address already has `max_held` refusals held."""
        with self._lock:
            return self.held.get(client, 0) >= self.max_held

    def hold(self, client: str, change: int):
        with self._lock:
            held = self.held.get(client, 0) + change
            if held > 0:
                self.held[client] = held
            else:
                self.held.pop(client, None)


class RefusalLog:
    """Coalesces refusals (401, 408, 429: nothing was generated) per (address, status): the
    first of a `window_s` is logged; the others are counted and logged as one line when the
    window ends (`flush`, called every second by the server's watcher)."""

    def __init__(self, write, window_s: float = 10.0, max_clients: int = MAX_CLIENTS):
        self.write, self.window_s, self.max_clients = write, window_s, max_clients
        self._open: OrderedDict[tuple, list] = OrderedDict()  # key → [since, count, record]
        self._lock = threading.Lock()

    def add(self, client: str, record: dict, now: float | None = None):
        now = time.monotonic() if now is None else now
        key = (client, record.get("status"), record.get("path"))
        due = []
        with self._lock:
            entry = self._open.get(key)
            if entry is None or now - entry[0] >= self.window_s:
                if entry is not None:
                    due.append(self._open.pop(key))
                self._open[key] = [now, 0, record]
                first = True
            else:
                entry[1] += 1
                entry[2] = record
                first = False
            while len(self._open) > self.max_clients:
                due.append(self._open.popitem(last=False)[1])
        for entry in due:
            self._summary(entry)
        if first:
            self.write(record)

    def flush(self, now: float | None = None, everything: bool = False):
        now = time.monotonic() if now is None else now
        with self._lock:
            keys = [k for k, e in self._open.items() if everything or now - e[0] >= self.window_s]
            due = [self._open.pop(k) for k in keys]
        for entry in due:
            self._summary(entry)

    def _summary(self, entry: list):
        since, count, record = entry
        if count:
            record = dict(record, repeated=count)
            record["error"] = (
                f"{count} more like this from one client in {self.window_s:.0f} s "
                f"(coalesced): {record.get('error') or ''}"
            )[:MAX_FIELD]
            self.write(record)


def timed_protocol(base, request_timeout_s: float):
    """An HTTP protocol class (for uvicorn.Config(http=...)) that closes a connection whose
    request (headers, then body) is not in within `request_timeout_s` of its first byte, or of
    the answer when a refused request's body is still trickling in. uvicorn times out idle
    keep-alive connections but not slow ones."""

    class TimedProtocol(base):
        def connection_made(self, transport):
            super().connection_made(transport)
            self._rx_since = time.monotonic()  # a new connection must send its request
            self._tick = self.loop.call_later(1.0, self._check)

        def data_received(self, data):
            if self._rx_since is None:
                self._rx_since = time.monotonic()
            super().data_received(data)

        def on_response_complete(self):
            self._rx_since = None  # the next byte starts the next request's clock
            super().on_response_complete()

        def connection_lost(self, exc):
            self._tick.cancel()
            super().connection_lost(exc)

        def _receiving(self) -> bool:
            cycle = self.cycle
            return cycle is None or cycle.response_complete or cycle.more_body

        def _check(self):
            if self.transport.is_closing():
                return
            if self._rx_since is not None and not self._receiving():
                self._rx_since = None  # the whole request is in: the answer may take long
            elif self._rx_since is not None:
                if time.monotonic() - self._rx_since > request_timeout_s:
                    self.transport.close()
                    return
            self._tick = self.loop.call_later(1.0, self._check)

    return TimedProtocol
