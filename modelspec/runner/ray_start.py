"""Starting Ray, or joining a cluster, without a hang and without losing Ctrl-C and SIGTERM.

`ray.init(address=...)` with nothing Ray at the address retries inside Ray's C++ client for ever, and
the driver's thread never comes back to Python there, so no Python signal handler runs: a `kill` or a
Ctrl-C is ignored. Ray also puts its own SIGTERM handler (`sys.exit(15)`) in place of the grid's. So:

- an address that refuses connections is said at once (a TCP connect to its host and port);
- a watchdog thread ends the command when joining takes longer than `connect_timeout()` (exit 2),
  or when a signal arrived and the main thread could not act on it within a second (130, 143): the
  signal's number reaches the watchdog through `signal.set_wakeup_fd`, written by the interpreter's
  C-level handler even while the main thread is in C++;
- the handlers in place before `ray.init` are put back after it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import warnings

from ..errors import SpecError, Terminated

# How long joining a cluster may take. Settable for a cluster whose head is slow to answer.
TIMEOUT_VARIABLE = "MODELSPEC_RAY_CONNECT_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0
GRACE_S = 1.0  # what the main thread gets to act on a signal itself (it prints the grid's stop)
JOIN_HINT = ("start it with `ray start --head` and give its address (auto, or ray://HOST:10001), or leave "
             f"--address out to start Ray on this machine; {TIMEOUT_VARIABLE}=SECONDS waits longer")


def connect_timeout() -> float:
    text = os.environ.get(TIMEOUT_VARIABLE, "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        value = -1.0
    if not value > 0:
        raise SpecError(f"{TIMEOUT_VARIABLE}={text}: expected a number of seconds above 0", hint="e.g. 60")
    return value


def start_ray(ray, address: str | None, env: dict[str, str]) -> None:
    """`ray.init` on this machine (address None) or joining the cluster at `address`."""
    timeout = connect_timeout() if address else None
    if address:
        check_reachable(address, timeout)
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # its C++ client's retry lines, as they come
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _Watchdog(address, timeout), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Ray warns, then raises: the error below says it once
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR, runtime_env={"env_vars": env} if env else None)
    except SystemExit as exc:  # Ray's own SIGTERM handler ran: the grid's stop, as any other SIGTERM
        raise Terminated() if exc.code == signal.SIGTERM else exc from None
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise _cannot_join(address, _first_line(exc)) from None
    finally:
        for signum, handler in handlers.items():
            if handler is not None:
                signal.signal(signum, handler)


def _cannot_join(address: str | None, why: str) -> SpecError:
    if address is None:
        return SpecError(f"cannot start Ray on this machine: {why}", hint="see Ray's logs under /tmp/ray")
    return SpecError(f"--address {address}: cannot join the Ray cluster: {why}", hint=JOIN_HINT)


def check_reachable(address: str, timeout: float | None = None) -> None:
    """A host and port that refuse a TCP connection (nothing listens there) fail now, not after the
    timeout. `auto` (the address of the cluster this machine started) is left to Ray."""
    timeout = connect_timeout() if timeout is None else timeout
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except socket.timeout:
        raise _cannot_join(address, f"no answer within {timeout:g} s") from None
    except OSError as exc:
        raise _cannot_join(address, exc.strerror or str(exc)) from None


class _Watchdog:
    """Ends the process if `ray.init` outlasts `timeout` (None: no limit), or a signal arrived and the
    main thread, stuck in Ray's C++ client, did not act on it (see the module's docstring)."""

    def __init__(self, address: str | None, timeout: float | None):
        self.address, self.timeout = address, timeout
        self.done = threading.Event()
        self.lock = threading.Lock()  # held by whichever ends it: the watchdog's exit or __exit__

    def __enter__(self):
        self.read, self.write = os.pipe()
        os.set_blocking(self.write, False)
        try:
            self.previous = signal.set_wakeup_fd(self.write, warn_on_full_buffer=False)
        except ValueError:  # not the main thread: its signals are not ours to watch
            self.previous = None
        self.thread = threading.Thread(target=self._watch, name="modelspec-ray-watchdog", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        with self.lock:
            self.done.set()
        if self.previous is not None:
            signal.set_wakeup_fd(self.previous)
        self.thread.join()
        os.close(self.read)
        os.close(self.write)

    def _watch(self) -> None:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        signum = None
        while not self.done.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self._end(f"error: {_cannot_join(self.address, f'no answer within {self.timeout:g} s')}", 2)
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - now))
            ready, _, _ = select.select([self.read], [], [], wait)
            if ready:
                signals = [s for s in os.read(self.read, 64) if s in (signal.SIGINT, signal.SIGTERM)]
                if signals and signum is None:
                    signum = signals[0]
                    if not self.done.wait(GRACE_S):
                        self._end("terminated" if signum == signal.SIGTERM else "interrupted", 128 + signum)

    def _end(self, message: str, code: int) -> None:
        with self.lock:
            if self.done.is_set():
                return
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.write(message + "\n")
                sys.stderr.flush()
            os._exit(code)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

