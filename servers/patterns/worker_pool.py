"""A bounded pool of worker processes: the task servers' work runs here, off the event loop that answers calls.

Notebooks 02 and 03's servers answer every call (start, status, cancel) on one asyncio event loop. When the
training ran on that loop too, each epoch's NumPy arithmetic held it: with 1,000 live trainings the loop was
busy 96 % of the time and "how is my task?" waited seconds behind the work (``bench/task_load.py``). So the
work runs elsewhere, in a pool that is:

* **processes, not threads.** An epoch of this small model is about 0.75 ms of CPU spent in a few hundred
  tiny NumPy calls (16-unit layers, 64-row batches): call overhead in Python, under the GIL, more than
  arithmetic that releases it. Measured on the 2-core lab machine (shared with other work, so the figures
  are rough): beside two trainings in threads, an idle loop's wake-up was late by 34-38 ms at p99 (waiting
  for the GIL); beside two trainings in processes, 8-14 ms (6 ms with nothing beside it). A thread would
  keep competing with the loop for the GIL; a process does not share it.
* **bounded, one training per core** (``machine_size()``, or ``--workers N``). A training is CPU-bound work
  (its pacing stands for compute), so more trainings than cores would only slice the same cores thinner and
  slow every one. Requests beyond that wait, visibly ``queued`` (the registry's job, ``task_registry.py``).
* **started lazily, cheaply.** No process starts until the first job. Then a ``forkserver`` (one clean
  interpreter with NumPy and the training code imported once, about 0.15 s of CPU) forks each worker in
  milliseconds; ``fork`` from the server itself would copy its threads' locks and its open connections into
  every child. A worker serves job after job.
* **honest about failure.** A job's exception comes back as a :class:`JobError` with its message; a worker
  that dies (SIGKILL, out of memory) ends its job with :class:`WorkerDied` naming the process and the signal,
  never a hang, and the next job gets a fresh worker. A cancel reaches the worker through its pipe and lands
  at the job's next ``pause`` (within one epoch). Workers exit when the server's end of their pipe closes,
  so a killed server leaves none behind.

A job is a module-level function ``job(report, pause, **arguments)`` (arguments and result picklable):
``report(progress, message)`` sends progress to the server, ``pause(seconds)`` waits and raises
:class:`JobCancelled` as soon as the server cancels the job.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from multiprocessing.connection import Connection
from typing import Any

#: What each worker process imports once, in the forkserver, so that forking a worker costs no imports.
PRELOAD = ["numpy", "lab_helpers.training"]
#: How long a cancelled job may take to stop before its worker is killed (a job that never pauses).
STOP_SECONDS = 5.0

Job = Callable[..., Any]


def machine_size() -> int:
    """How many CPUs this process may use: the pool's default size (one CPU-bound training per CPU)."""
    if hasattr(os, "process_cpu_count"):  # Python 3.13+
        count = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count()
    return max(1, count or 1)


class JobCancelled(Exception):
    """Raised in a worker by ``pause`` when the server cancelled the job."""


class JobError(RuntimeError):
    """The job raised in its worker; the message is the job's own."""


class WorkerDied(RuntimeError):
    """The worker process running a job ended before the job did."""


def _worker_main(conn: Connection) -> None:
    """A worker process: run the jobs that arrive on ``conn`` one after the other, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle; it closes our pipe

    def report(progress: int, message: str) -> None:
        conn.send(("progress", progress, message))

    def pause(seconds: float) -> None:
        if conn.poll(max(seconds, 0.0)):  # anything from the server during a job means stop
            conn.recv()  # EOFError when the server is gone: the worker ends below
            raise JobCancelled

    while True:
        try:
            message = conn.recv()
            if not isinstance(message, tuple):  # a cancel that arrived after its job had ended
                continue
            job, arguments = message
            try:
                reply: tuple[Any, ...] = ("done", job(report, pause, **arguments))
            except JobCancelled:
                reply = ("cancelled",)
            except Exception as error:  # noqa: BLE001 - every failure goes back to the server as text
                reply = ("failed", str(error) or type(error).__name__)
            conn.send(reply)
        except (EOFError, OSError):  # the server closed the pipe (stopping) or died
            return


_starting = threading.Lock()


@contextmanager
def _without_main_script() -> Iterator[None]:
    """Start a worker without re-running the server's script in it.

    multiprocessing runs the parent's main script again in each forkserver child (as ``__mp_main__``), in
    case a job is a function defined there. Ours live in importable modules, and a server script imports
    the whole MCP stack: a second of CPU per worker for nothing. A main module whose spec is named
    ``__main__`` is the case multiprocessing leaves alone.
    """
    main = sys.modules["__main__"]
    with _starting:
        saved = getattr(main, "__spec__", None)
        main.__spec__ = ModuleSpec("__main__", None)
        try:
            yield
        finally:
            main.__spec__ = saved


class _Worker:
    """One worker process and the server's end of its pipe."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child,), name="task-worker", daemon=True)
        with _without_main_script():
            self.process.start()
        child.close()  # only the worker holds its end now, so its death reads as end-of-file here

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def death(self) -> str:
        """How the process ended, for the task's error."""
        self.process.join(1.0)
        code = self.process.exitcode
        if code is None:
            how = "stopped answering"
        elif code < 0:
            how = f"was killed by {signal.Signals(-code).name}"
        else:
            how = f"exited with code {code}"
        return f"the worker process running it (pid {self.process.pid}) {how} before the task ended"

    def close(self) -> None:
        self.conn.close()
        self.process.join(1.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1.0)


class WorkerPool:
    """At most ``size`` worker processes, started when first needed; :meth:`run` runs one job on one of them."""

    def __init__(self, size: int | None = None) -> None:
        size = machine_size() if size is None else size
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be a whole number >= 0, got {size!r}")
        self.size = size
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._context: multiprocessing.context.BaseContext | None = None

    def pids(self) -> list[int]:
        """Process ids of the workers running a job now (the ones a crash would hit)."""
        return sorted(worker.process.pid for worker in self._busy if worker.process.pid is not None)

    def describe(self) -> dict[str, Any]:
        return {"workers": self.size, "busy": len(self._busy), "started": len(self._busy) + len(self._idle),
                "busy_pids": self.pids()}

    async def run(self, job: Job, arguments: dict[str, Any], report: Callable[[int, str], None]) -> Any:
        """Run ``job(**arguments)`` in a worker and return its result, passing its progress to ``report``.

        Raises :class:`JobError` (the job raised) or :class:`WorkerDied`; cancelling the awaiting task cancels
        the job in its worker. The caller keeps at most ``size`` jobs running (the registry queues the rest).
        """
        if len(self._busy) >= self.size:
            raise RuntimeError(f"all {self.size} workers are busy: queue the job until one is free")
        idle = [worker for worker in self._idle if worker.alive]
        worker = idle.pop() if idle else await asyncio.to_thread(_Worker, self._start_context())
        self._idle = idle
        self._busy.add(worker)
        replies = self._listen(worker)
        reusable = True
        try:
            worker.conn.send((job, arguments))
            return await self._relay(worker, replies, report)
        except (WorkerDied, OSError):  # OSError: its pipe broke as the job was sent
            reusable = False
            raise WorkerDied(await asyncio.to_thread(worker.death)) from None
        except asyncio.CancelledError:
            reusable = await self._stop_job(worker, replies)
            raise
        finally:
            asyncio.get_running_loop().remove_reader(worker.conn.fileno())
            self._busy.discard(worker)
            if reusable and worker.alive:
                self._idle.append(worker)
            else:
                await asyncio.to_thread(worker.close)

    @staticmethod
    def _listen(worker: _Worker) -> asyncio.Queue[tuple[Any, ...]]:
        """The worker's messages, as the event loop reads them from its pipe (``("died",)`` at end-of-file)."""
        loop = asyncio.get_running_loop()
        replies: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

        def readable() -> None:
            try:
                replies.put_nowait(worker.conn.recv())
            except (EOFError, OSError):  # the worker died: its end of the pipe closed with it
                loop.remove_reader(worker.conn.fileno())
                replies.put_nowait(("died",))

        loop.add_reader(worker.conn.fileno(), readable)
        return replies

    @staticmethod
    async def _relay(worker: _Worker, replies: asyncio.Queue[tuple[Any, ...]],
                     report: Callable[[int, str], None]) -> Any:
        """Pass the job's progress on until it ends; its result, or the exception that says how it ended."""
        while True:
            kind, *detail = await replies.get()
            if kind == "progress":
                report(*detail)
            elif kind == "done":
                return detail[0]
            elif kind == "failed":
                raise JobError(detail[0])
            else:
                raise WorkerDied(f"worker {worker.process.pid} died")

    async def _stop_job(self, worker: _Worker, replies: asyncio.Queue[tuple[Any, ...]]) -> bool:
        """Ask the worker to stop its job and wait for it to end; whether the worker can take another job."""
        try:
            worker.conn.send("cancel")
            async with asyncio.timeout(STOP_SECONDS):
                while (kind := (await replies.get())[0]) == "progress":
                    pass
        except (OSError, TimeoutError):
            return False
        return kind != "died"

    def _start_context(self) -> multiprocessing.context.BaseContext:
        """The forkserver context, started on first use with the job's imports preloaded."""
        if self._context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            self._context = context
        return self._context

    async def close(self) -> None:
        """Stop every idle worker (closing its pipe ends it); a busy one ends when its job is cancelled."""
        idle, self._idle = self._idle, []
        await asyncio.gather(*(asyncio.to_thread(worker.close) for worker in idle))


def split_workers_option(argv: Sequence[str] | None = None) -> tuple[int | None, list[str]]:
    """A task server's ``--workers N`` (None when absent: :func:`machine_size`) and the rest of its command line.

    Tests and the benchmark pick the pool's size; ``--workers 0`` accepts tasks and runs none (every one stays
    queued: the benchmark's floor for starting tasks that do no work).
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--workers", type=int, default=None)
    options, rest = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    if options.workers is not None and not 0 <= options.workers <= 256:
        parser.error(f"--workers must be between 0 and 256, got {options.workers}")
    return options.workers, rest
