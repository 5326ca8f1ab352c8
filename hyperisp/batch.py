"""Batch engines: run a planned batch (see :mod:`hyperisp.batch_plan`) file by file.

Every file goes through three stages: read (LibRaw / image decode), network +
colour, write (encode, atomic rename). A failing file becomes a failed
:class:`FileResult` with its one-line reason and the batch goes on.

Engines:
  * ``local``, ``jobs=1``: one process, one model copy; a reader thread decodes the
    next file and a writer thread encodes the previous output while the network
    runs (torch and the codecs release the GIL), with at most one file waiting at
    each hand-over so memory stays bounded.
  * ``local``, ``jobs=N``: N worker processes (spawned, so no forked OpenMP state),
    each loading the model once in its initializer and using cpu_count/N torch
    threads. N is capped by the memory available (:func:`cap_jobs`).
  * ``ray``: the same per-file function as Ray tasks (:mod:`hyperisp.batch_ray`).

Ctrl-C: files being written are finished or removed (never left partial),
finished files stay, and the rerun skips them.
"""
from __future__ import annotations

import os
import queue
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from .batch_plan import PlanItem
from .errors import HyperispError

__all__ = ["JobSpec", "FileResult", "process_item", "run_batch", "available_memory", "estimate_megapixels",
           "cap_jobs"]

OnResult = Callable[["FileResult"], None]


@dataclass(frozen=True)
class JobSpec:
    """What to do with every file (picklable: it travels to worker processes and Ray tasks).

    ``options`` go to :func:`hyperisp.pipeline.develop_raw` or :func:`hyperisp.pipeline.denoise`
    as keyword arguments (wb, exposure, ...).
    """

    command: str  # "develop" | "denoise"
    model: str
    device: str = "cpu"
    fmt: str | None = None
    quality: int = 95
    overwrite: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    strip_location: bool = False  # write no GPS position (--strip-location)


@dataclass
class FileResult:
    """How one input ended: status "done", "skipped" or "failed"; ``info`` holds per-file extras.

    ``seconds`` is the work spent on the file (read + network + write, each also in
    ``info["stage_seconds"]``), not the wall time it spent waiting in a pipeline.
    """

    input: str
    output: str | None
    status: str
    reason: str = ""
    seconds: float = 0.0
    megapixels: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _done(item: PlanItem, rendered: Any, stages: dict[str, float]) -> FileResult:
    info = {**rendered.info, "stage_seconds": {k: round(v, 4) for k, v in stages.items()}}
    height, width = rendered.pixels.shape[:2]
    return FileResult(str(item.source), str(item.target), "done", seconds=round(sum(stages.values()), 4),
                      megapixels=height * width / 1e6, info=info)


def _failed(item: PlanItem, error: BaseException, seconds: float = 0.0) -> FileResult:
    if isinstance(error, HyperispError):
        reason = error.reason if error.path in (None, str(item.source)) else str(error)
    else:  # a bug, not bad input: still one line, and the batch goes on
        reason = f"unexpected {type(error).__name__}: {error}"
    return FileResult(str(item.source), str(item.target), "failed", reason, round(seconds, 4))


# ----------------------------------------------------------------------------- the three stages

# The steps are pipeline.read_input / run_network / write_output, the ones develop_file and
# denoise_file run: a file comes out of a batch with the same bytes as alone.

def read_stage(item: PlanItem, spec: JobSpec) -> Any:
    """Decode the input: a RawImage (develop) or a Photo (denoise)."""
    from .pipeline import read_input

    return read_input(spec.command, item.source)


def compute_stage(decoded: Any, spec: JobSpec) -> Any:
    """Network and colour: a :class:`hyperisp.pipeline.Rendered` (pixels, EXIF, ICC, per-file info)."""
    from .pipeline import run_network

    return run_network(spec.command, decoded, model=spec.model, device=spec.device, **spec.options)


def write_stage(item: PlanItem, spec: JobSpec, rendered: Any) -> None:
    """Encode and write atomically (the output's folder is made when the tree is mirrored)."""
    from .pipeline import write_output

    if item.make_folder:
        try:
            item.target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise HyperispError(item.target, f"cannot create its folder: {err.strerror or err}") from None
    write_output(item.target, rendered, fmt=spec.fmt, quality=spec.quality, overwrite=spec.overwrite,
                 strip_location=spec.strip_location)


def process_item(item: PlanItem, spec: JobSpec) -> FileResult:
    """Read, compute and write one file; never raises for a bad file (Ctrl-C still propagates)."""
    start = time.perf_counter()
    try:
        decoded = read_stage(item, spec)
        read_end = time.perf_counter()
        rendered = compute_stage(decoded, spec)
        network_end = time.perf_counter()
        write_stage(item, spec, rendered)
    except Exception as error:
        return _failed(item, error, time.perf_counter() - start)
    stages = {"read": read_end - start, "network": network_end - read_end, "write": time.perf_counter() - network_end}
    return _done(item, rendered, stages)


# ----------------------------------------------------------------------------- memory guard

# Peak memory of one worker: runtime + model (measured ~0.3 GB), plus the network's working
# set per megapixel (measured peak RSS growth: develop/isp 0.23 GB at 2 MP, denoise 0.30 GB at 1 MP),
# with some headroom.
WORKER_BASE_BYTES = 500e6
WORKER_BYTES_PER_MEGAPIXEL = {"develop": 250e6, "denoise": 320e6}


def available_memory() -> int | None:
    """Bytes the system can still give (MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def estimate_megapixels(items: list[PlanItem], command: str) -> float:
    """Largest input size in megapixels, for the memory guard, without decoding anything.

    Raws: file bytes / 1e6 (raws hold at least one byte per pixel, so this errs high);
    images: the size in the header of the few largest files.
    """
    sizes = sorted(((p.stat().st_size, p) for p in (i.source for i in items) if p.is_file()), reverse=True)
    if not sizes:
        return 0.0
    if command == "develop":
        return sizes[0][0] / 1e6
    from PIL import Image

    largest = 0.0
    for _, path in sizes[:5]:
        try:
            with Image.open(path) as im:
                largest = max(largest, im.width * im.height / 1e6)
        except Exception:
            pass  # its own error comes when it is processed
    return largest


def cap_jobs(jobs: int, megapixels: float, command: str = "develop", available: int | None = None
             ) -> tuple[int, str]:
    """Cap ``jobs`` so every worker's model copy and working set fit in memory: (jobs, note or "")."""
    available = available_memory() if available is None else available
    if available is None or jobs <= 1:
        return max(1, jobs), ""
    per_worker = WORKER_BASE_BYTES + WORKER_BYTES_PER_MEGAPIXEL[command] * megapixels
    fit = max(1, int(0.8 * available // per_worker))
    if fit >= jobs:
        return jobs, ""
    return fit, (f"--jobs {jobs} capped to {fit}: each worker needs about {per_worker / 1e9:.1f} GB "
                 f"for {megapixels:.0f} MP images and {available / 1e9:.1f} GB is available")


# ----------------------------------------------------------------------------- local engines

_DONE = object()


def _run_pipelined(items: list[PlanItem], spec: JobSpec, on_result: OnResult) -> None:
    """jobs=1: decode ahead and encode behind the network, each in its own thread."""
    decoded: queue.Queue = queue.Queue(maxsize=1)
    to_write: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def reader() -> None:
        for item in items:
            if stop.is_set():
                break
            start = time.perf_counter()
            try:
                raw = read_stage(item, spec)
            except Exception as error:
                decoded.put((item, None, error, {"read": time.perf_counter() - start}))
            else:
                decoded.put((item, raw, None, {"read": time.perf_counter() - start}))
        decoded.put(_DONE)

    fatal: list[BaseException] = []

    def writer() -> None:
        while (job := to_write.get()) is not _DONE:
            if fatal:
                continue  # drain, so the main thread never blocks on a dead writer
            item, rendered, stages = job
            start = time.perf_counter()
            try:
                write_stage(item, spec, rendered)
            except Exception as error:
                on_result(_failed(item, error, sum(stages.values()) + time.perf_counter() - start))
                continue
            except BaseException as error:  # KeyboardInterrupt/SystemExit here: stop the batch in the main thread
                fatal.append(error)
                stop.set()
                continue
            on_result(_done(item, rendered, {**stages, "write": time.perf_counter() - start}))

    threads = [threading.Thread(target=reader, daemon=True), threading.Thread(target=writer, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        while (job := decoded.get()) is not _DONE and not fatal:
            item, raw, error, stages = job
            start = time.perf_counter()
            if error is None:
                try:
                    rendered = compute_stage(raw, spec)
                except Exception as err:
                    error = err
            stages["network"] = time.perf_counter() - start
            if error is not None:
                on_result(_failed(item, error, sum(stages.values())))
                continue
            to_write.put((item, rendered, stages))
    finally:
        # On Ctrl-C: stop reading, let the writer finish what is computed (a finished file is never lost).
        stop.set()
        while threads[0].is_alive():
            try:
                decoded.get(timeout=0.05)
            except queue.Empty:
                pass
        to_write.put(_DONE)
        threads[1].join()
    if fatal:
        raise fatal[0]


_worker_spec: JobSpec | None = None


def _init_worker(spec: JobSpec, threads: int) -> None:
    """Pool initializer: ignore Ctrl-C (the parent decides), set torch threads, load the model once."""
    global _worker_spec
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    from . import pipeline
    from .runtime import keep_freed_memory

    torch.set_num_threads(threads)
    keep_freed_memory()
    _worker_spec = spec
    try:
        pipeline.get_model(spec.model, "isp" if spec.command == "develop" else "denoise",
                           pipeline.resolve_device(spec.device))
    except HyperispError:
        pass  # every file will report it


def _pool_task(item: PlanItem) -> FileResult:
    return process_item(item, _worker_spec)


_WORKER_DIED = "a worker process died (out of memory?); rerun to resume"


def _run_pool(items: list[PlanItem], spec: JobSpec, jobs: int, on_result: OnResult) -> None:
    import multiprocessing

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // jobs)
    pending: set = set()
    todo = iter(items)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(spec, threads)) as pool:
        try:
            while True:
                # Keep only a few files in flight: a 100k-file batch must not queue 100k futures.
                while len(pending) < 2 * jobs and (item := next(todo, None)) is not None:
                    try:
                        future = pool.submit(_pool_task, item)
                    except BrokenProcessPool:  # a worker died (killed, out of memory): the pool is gone
                        for left in (item, *todo):
                            on_result(_failed(left, HyperispError(None, "not processed: " + _WORKER_DIED)))
                        break
                    future.item = item
                    pending.add(future)
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        on_result(future.result())
                    except BrokenProcessPool:
                        on_result(_failed(future.item, HyperispError(None, _WORKER_DIED)))
                    except Exception as error:
                        on_result(_failed(future.item, error))
        except BaseException:
            for future in pending:
                future.cancel()  # running ones finish (workers ignore Ctrl-C), queued ones never start
            raise


def run_batch(items: Iterable[PlanItem], spec: JobSpec, *, engine: str = "local", jobs: int = 1,
              address: str | None = None, on_result: OnResult = lambda r: None) -> list[FileResult]:
    """Run every planned item and return one :class:`FileResult` per item, in the items' order.

    ``on_result`` sees each result as it arrives (in completion order).

    Items already skipped or failed at planning are reported as they are; the rest
    run on ``engine`` ("local" or "ray") with ``jobs`` workers.
    """
    items = list(items)
    results: list[FileResult] = []
    lock = threading.Lock()

    def report(result: FileResult) -> None:
        with lock:
            results.append(result)
            on_result(result)

    todo = []
    for item in items:
        if item.status == "todo":
            todo.append(item)
        else:
            report(FileResult(str(item.source), item.target and str(item.target), item.status, item.reason))
    if engine == "ray":
        from .batch_ray import run_ray

        run_ray(todo, spec, jobs=jobs, address=address, on_result=report)
    elif engine != "local":
        raise HyperispError(None, f"unknown engine '{engine}', expected local or ray")
    elif jobs <= 1 or len(todo) <= 1:
        _run_pipelined(todo, spec, report)
    else:
        _run_pool(todo, spec, min(jobs, len(todo)), report)
    order = {(str(i.source), i.target and str(i.target)): n for n, i in enumerate(items)}
    return sorted(results, key=lambda r: order.get((r.input, r.output), len(order)))
