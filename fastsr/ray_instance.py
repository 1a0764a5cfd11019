"""A local Ray instance started for one run, with only the processes a job uses, and
ended with the run.

`ray.init()` without an address starts, besides the GCS and the raylet, five Python
daemons at ~1 CPU s each (mostly their start-up), a fixed cost that a 30 CPU s job
cannot hide (docs/SCALE-OUT.md). The autoscaler monitor (nothing to scale on one
machine) and the log monitor (workers' output stays in Ray's log files) are two of
them, and `ray.init` cannot leave them out, so the head is started here with Ray's own
node API, as `ray.init` and `ray.cluster_utils.Cluster` start theirs, then joined with
`ray.init(address=...)`. The dashboard head and the raylet's two agents are started
whatever is asked. That API is Ray's private one: if it fails, Ray's default start is
used, with a warning.

The processes are the driver's children, with the session's own ports and session
folder, and end in `own_instance`'s exit: after the job, after an error, on Ctrl-C and
on SIGTERM (turned into SystemExit, as ray.init does); if the driver is killed outright, the
kernel ends them (Ray starts them with PR_SET_PDEATHSIG). Another Ray instance on the
machine is never touched (no `ray stop`, which stops every instance).
"""

from __future__ import annotations

import signal
import threading
import time
import warnings
from contextlib import contextmanager, suppress

# No idle workers started ahead (Ray starts one per CPU, ~1 CPU s each, though the
# job's actors may want fewer). Ray starts its workers at niceness +15 so that its own
# daemons stay responsive; on a machine shared with other work that slows the
# upscaling the user started at their niceness (measured: docs/SCALE-OUT.md), so ours
# run at it.
SYSTEM_CONFIG = {
    "worker_niceness": 0,
    "prestart_worker_first_driver": False,
    "enable_worker_prestart": False,
}
_QUIET = {"log_to_driver": False, "logging_level": "WARNING"}  # errors come as exceptions


@contextmanager
def own_instance(ray, cpus: int | None):
    """`ray` connected to a local instance started for the run with `cpus` CPUs (None:
    the machine's), whose processes end when this exits."""
    with _sigterm_as_exit():
        head = _start_head(cpus)
        try:
            if head is not None:
                try:
                    ray.init(address=head.address, **_QUIET)
                except Exception as error:
                    _end(head)
                    head = _fallen_back(error)
            if head is None:
                ray.init(num_cpus=cpus, include_dashboard=False, _system_config=SYSTEM_CONFIG,
                         **_QUIET)  # fmt: skip
            yield ray
        finally:
            ray.shutdown()
            if head is not None:
                _end(head)


def _start_head(cpus: int | None):
    """A head node without the autoscaler monitor and the log monitor, started as
    `ray.init` starts one (token authentication and usage stats as it sets them), or
    None if that failed."""
    try:
        from ray._common.usage import usage_lib
        from ray._private.authentication import authentication_token_setup as auth
        from ray._private.node import Node
        from ray._private.parameter import RayParams

        auth.enable_token_auth_by_default()
        auth.ensure_token_if_auth_enabled(SYSTEM_CONFIG, create_token_if_missing=True)
        usage_lib.set_usage_stats_enabled_via_env_var(False)
        params = RayParams(num_cpus=cpus, include_dashboard=False, include_log_monitor=False,
                           no_monitor=True, _system_config=SYSTEM_CONFIG)  # fmt: skip

        class Head(Node):
            def __init__(self, *args, **kwargs) -> None:
                try:
                    super().__init__(*args, **kwargs)
                except BaseException:  # Ctrl-C, SIGTERM or a failure while it starts
                    with suppress(Exception):  # (it may have started nothing yet)
                        _end(self)
                    raise

            def start_api_server(self, **_) -> None:  # Ray's state when it fails to start
                self._webui_url = ""

        return Head(params, head=True, shutdown_at_exit=False, spawn_reaper=True)
    except Exception as error:  # Ray's private API moved: its default start still works
        return _fallen_back(error)


@contextmanager
def _sigterm_as_exit():
    """SIGTERM raises SystemExit from the head's start to its end, so that what started is
    ended (`ray.init` installs its own, alike, while connected)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_on_signal(number: int, _frame) -> None:
    raise SystemExit(128 + number)


def _fallen_back(error: Exception) -> None:
    warnings.warn(f"Ray: the trimmed local instance did not start ({error}); starting "
                  "Ray's default one", RuntimeWarning, stacklevel=4)  # fmt: skip


def _end(head) -> None:
    """Ends the head's processes. The raylet's own (its agents, the workers) are ended
    first, with the raylet halted so that it starts none meanwhile: a raylet stopped while
    it starts leaves the agents it has just started running for a while."""
    import psutil  # Ray's own copy (ray/thirdparty_files) if not installed

    family = []
    for info in head.all_processes.get("raylet", ()):
        with suppress(psutil.Error):
            raylet = psutil.Process(info.process.pid)
            raylet.suspend()
            family += [raylet, *raylet.children(recursive=True)]
    for process in family:
        with suppress(psutil.Error):
            process.kill()
    _wait_dead(psutil, family, timeout=5)
    head.kill_all_processes(check_alive=False, allow_graceful=True, wait=True)


def _wait_dead(psutil, processes, timeout: float) -> None:
    """Waits until each process has ended, a zombie counting as ended: the agents, orphaned
    by the raylet, are reaped by init, which some inits (a VM's, a container's) do only
    every few seconds (measured: 2 s of every run's wall, docs/SCALE-OUT.md)."""
    deadline = time.monotonic() + timeout
    while processes and time.monotonic() < deadline:
        psutil.wait_procs(processes, timeout=0.01)  # reaps our own children (the raylet)
        processes = [p for p in processes if _alive(psutil, p)]
        if processes:
            time.sleep(0.01)


def _alive(psutil, process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:  # ended and reaped
        return False
