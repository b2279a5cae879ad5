"""Where replays run: on this machine (in-process or a fork pool) or on a Ray cluster, behind one ``map``.

``Backend.map(fn, items)`` applies a module-level function to every item and returns the results in item order,
whatever ran where; ``fn`` must be deterministic in its item (every replay is: a seeded sim, a fixed tape), so the
results are identical on every backend. Two backends:

* ``Local(workers)``: in this process when ``workers`` is 1 (or there is one item), else a fork pool of
  ``workers`` processes (one item per task), the behaviour ``tapeshot eval --workers`` always had.
* ``Ray(address, workers)``: one ``ray.remote`` task per item on a Ray cluster (the optional extra:
  ``pip install "tapeshot[cluster]"``). ``address`` is ``host[:port]`` (the head's GCS port, 6379 by default),
  ``ray://host[:port]`` (Ray Client, needs ``ray[client]``), ``auto`` (the cluster this machine is part of), or
  ``local``: start a Ray instance on this machine with ``workers`` CPUs (one big box, and the tests).

Tasks carry paths and parameters, never recordings: every node must read the recordings at the same paths (a
shared filesystem, or the same files copied to the same place on every node) and run the same Tapeshot build
(same version, installed the same way) so that its replays, and so its numbers, are the driver's.

``session(workers, cluster)`` opens a backend for the length of a command and makes it the *current* one:
``current(workers)`` is what ``engine.eval.runner.run_jobs`` and ``engine.learn`` map over, so the experiments
need not thread a backend through (outside a session it is ``Local(workers)``, today's behaviour).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from engine.errors import ConfigError, TapeshotError

T = TypeVar("T")
R = TypeVar("R")

INSTALL_HINT = 'pip install "tapeshot[cluster]"'
LOCAL = "local"
GCS_PORT = 6379                  # ``ray start --head`` default
CLIENT_PORT = 10001              # Ray Client (``ray://``) default
PROBE_TIMEOUT_S = 5.0            # ray.init retries an unreachable head for minutes: fail fast with a clear error


class Backend(Protocol):
    """Something that maps a function over items, results in item order."""

    workers: int                 # how many items run at once (sizes the chunking of featurization)
    forks: bool                  # tasks run in processes forked at ``map``: they see the caller's memory as it was

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(x) for x in items]``, possibly elsewhere, in item order."""
        ...

    def close(self) -> None:
        """Release what the backend started."""
        ...


class Local:
    """This machine: in-process for one worker or one item, else a fork pool of ``workers`` processes."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        self.workers = workers
        self.forks = workers > 1

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``fn`` over ``items`` in worker processes (forked: they inherit this process's modules), in order."""
        items = list(items)
        if self.workers <= 1 or len(items) <= 1:
            return [fn(x) for x in items]
        ctx = mp.get_context("fork")
        with ctx.Pool(min(self.workers, len(items))) as pool:
            return pool.map(fn, items, chunksize=1)

    def close(self) -> None:
        """Nothing to release: each ``map`` has its own pool."""

    def __repr__(self) -> str:
        return f"Local(workers={self.workers})"


class Ray:
    """A Ray cluster: one task (1 CPU) per item. Connects (or, for ``local``, starts an instance) on creation;
    reuses a Ray already initialised in this process (then leaves it running on ``close``)."""

    def __init__(self, address: str = LOCAL, workers: int = 1) -> None:
        self.ray = import_ray()
        self.address = address
        self._owned = False
        self._remote: dict[Callable, Any] = {}
        self.forks = False
        if address not in (LOCAL, "auto"):
            probe(address)                   # also when reusing a running Ray: a bad address is always an error
        if not self.ray.is_initialized():
            self._init(address, workers)
            self._owned = True
        self.workers = max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def _init(self, address: str, workers: int) -> None:
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if address == LOCAL:
                self.ray.init(num_cpus=workers, include_dashboard=False, **quiet)
            else:
                self.ray.init(address=address, **quiet)
        except ConfigError:
            raise
        except Exception as exc:            # ConnectionError, RuntimeError, ValueError ... all mean "no cluster"
            where = "start a local Ray instance" if address == LOCAL else f"connect to the Ray cluster at {address}"
            raise ConfigError(f"could not {where}: {type(exc).__name__}: {exc}") from None

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """One remote task per item, all submitted at once; ``ray.get`` keeps their order. A task's own Tapeshot
        error (a missing recording on a node, say) is raised as itself."""
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self.ray.remote(num_cpus=1)(fn)
        refs = [remote.remote(x) for x in items]
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, TapeshotError):
                raise cause from None
            raise

    def close(self) -> None:
        """Shut Ray down when this backend started or connected it."""
        if self._owned and self.ray.is_initialized():
            self.ray.shutdown()
        self._owned = False

    def __repr__(self) -> str:
        return f"Ray(address={self.address!r}, workers={self.workers})"


def import_ray() -> Any:
    """The ``ray`` module, or a ``ConfigError`` telling how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--cluster needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def parse_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``host[:port]`` or ``ray://host[:port]`` (default ports: 6379, Ray Client 10001)."""
    client = address.startswith("ray://")
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep:
        host, port = address.removeprefix("ray://"), ""
    try:
        p = int(port) if port else CLIENT_PORT if client else GCS_PORT
    except ValueError:
        p = -1
    if not host or not 0 < p < 65536:
        raise ConfigError(f"bad --cluster address {address!r}: use host[:port], ray://host[:port], auto or local")
    return host, p


def probe(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """``ConfigError`` unless a TCP connection to the address's host and port opens within ``timeout_s``."""
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address} ({host}:{port}: {exc}): start its head with "
                          f"`ray start --head` there, or use --cluster local") from None


def open_backend(workers: int, cluster: str | None = None) -> Backend:
    """``Local(workers)`` without ``cluster``, else a ``Ray`` backend on that address (``local``: an instance
    started here with ``workers`` CPUs)."""
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if not cluster:
        return Local(workers)
    return Ray(cluster.strip(), workers)


_current: Backend | None = None


@contextlib.contextmanager
def session(workers: int, cluster: str | None = None) -> Iterator[Backend]:
    """Open a backend (``open_backend``), make it the current one for the block, close it after."""
    global _current
    backend = open_backend(workers, cluster)
    previous, _current = _current, backend
    try:
        yield backend
    finally:
        _current = previous
        backend.close()


def current(workers: int = 1) -> Backend:
    """The backend of the enclosing ``session``, else ``Local(workers)`` (at least one)."""
    return _current if _current is not None else Local(max(1, workers))
