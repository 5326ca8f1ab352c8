"""The ``ray`` batch engine: every file is a Ray task running :func:`hyperisp.batch.process_item`.

Ray is an optional extra (``pip install hyperisp[ray]``) and imported only here.
``address=None`` starts a local Ray instance; ``address="auto"`` or
``"ray://host:10001"`` joins a running cluster. On a cluster every node must see
the inputs and outputs under the same paths (a shared filesystem) and have
hyperisp installed. Results are the same as the local engine's: a task reads,
develops and writes one file atomically, so resume and failure reports work the
same way. A Ray worker process keeps its loaded model between tasks (the
pipeline's model cache), so each worker loads the model once.
"""
from __future__ import annotations

import os
from pathlib import Path

from .batch import FileResult, JobSpec, OnResult, _failed, process_item
from .batch_plan import PlanItem
from .errors import HyperispError

__all__ = ["run_ray"]


def _process_remote(item: PlanItem, spec: JobSpec) -> FileResult:
    import torch

    from .runtime import keep_freed_memory

    torch.set_num_threads(1)  # one CPU per task, as Ray scheduled it
    keep_freed_memory()
    return process_item(item, spec)


def _check_reachable(address: str) -> None:
    """Fail in seconds, not minutes, when a ``host:port`` or ``ray://host:port`` address does not answer."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms: Ray resolves them
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise HyperispError(None, f"cannot reach Ray at {address}: {err.strerror or err}") from None


def _connect(address: str | None, jobs: int):
    try:
        import ray
    except ImportError:
        raise HyperispError(None, "--engine ray needs Ray: pip install 'hyperisp[ray]'") from None
    if not ray.is_initialized():
        # Workers must import this very hyperisp (a checkout run without installing it, too).
        source_root = str(Path(__file__).resolve().parents[1])
        python_path = os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p)
        options = dict(include_dashboard=False, log_to_driver=False, configure_logging=False,
                       runtime_env={"env_vars": {"PYTHONPATH": python_path}})
        if address is None:
            options["num_cpus"] = max(1, jobs)
        else:
            _check_reachable(address)
        try:
            ray.init(address=address, **options)
        except Exception as err:  # ConnectionError, ValueError, RuntimeError depending on the failure
            raise HyperispError(None, f"cannot start or join Ray at {address or 'a new local instance'}: "
                                      f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    return ray


def run_ray(items: list[PlanItem], spec: JobSpec, *, jobs: int = 1, address: str | None = None,
            on_result: OnResult = lambda r: None) -> None:
    """Run ``items`` as Ray tasks, at most ``max(2 * jobs, 2 * cluster CPUs)`` in flight; report each result."""
    if not items:
        return
    import sys

    started_here = "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    ray = _connect(address, jobs)
    # Ray hides GPUs from tasks that do not ask for one; tasks share a node's GPUs, ``jobs`` to a GPU.
    gpus = ray.cluster_resources().get("GPU", 0) if spec.device != "cpu" else 0
    task = ray.remote(num_cpus=1, num_gpus=1 / max(1, jobs) if gpus else 0, max_retries=0)(_process_remote)
    in_flight_cap = max(2 * jobs, 2 * int(ray.cluster_resources().get("CPU", 1)))
    pending: dict = {}
    todo = iter(items)
    try:
        while True:
            while len(pending) < in_flight_cap and (item := next(todo, None)) is not None:
                pending[task.remote(item, spec)] = item
            if not pending:
                break
            finished, _ = ray.wait(list(pending), num_returns=1)
            for ref in finished:
                item = pending.pop(ref)
                try:
                    on_result(ray.get(ref))
                except Exception as error:  # the worker died (killed, out of memory)
                    on_result(_failed(item, HyperispError(None, f"Ray task failed: {str(error).splitlines()[0]}")))
    except BaseException:
        for ref in pending:
            ray.cancel(ref)  # a running task is interrupted inside its atomic write: no partial file
        raise
    finally:
        if started_here:
            ray.shutdown()
