"""Folders and videos on a local Ray cluster: the same bytes and frames as the local
path, workers that die, inputs that fail for good."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_segments import decoded, keyframed_clip
from test_video import damage_packet, make_clip, probe

import fastsr
from fastsr.cli import main
from fastsr.distributed import upscale_video_on_ray
from fastsr.segments import JobIncomplete, job_folder, plan_segments
from fastsr.video import upscale_video

ray = pytest.importorskip("ray", reason="the Ray tests need fastsr[ray]")
av = pytest.importorskip("av", reason="video needs PyAV")

JOB_SECONDS = 120  # no test waits longer on Ray than this
MODEL = {"model": "fast_x2", "backend": "cpu"}


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """One local Ray instance for the module: 2 CPUs, as on the CI machine."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def within(seconds: float, run, *args, **kwargs):
    """run(*args, **kwargs), failing the test (not hanging it) after `seconds`."""
    outcome = {}

    def target():
        try:
            outcome["value"] = run(*args, **kwargs)
        except BaseException as error:  # handed to the test thread
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the Ray job took more than {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def image_folder(root: Path, count: int = 8) -> Path:
    from PIL import Image

    root.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i in range(count):
        pixels = rng.integers(0, 256, (20 + 3 * i, 28, 3), np.uint8)
        Image.fromarray(pixels).save(root / f"image{i}.{'png' if i % 2 else 'jpg'}")
    return root


def noise_pngs(root: Path, count: int, height: int, width: int, seed: int) -> Path:
    """`count` RGB noise images 0.png, 1.png, ... in a new folder `root`."""
    from PIL import Image

    root.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(root / f"{i}.png")
    return root


def files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_folder_on_ray_equals_the_local_run_bit_for_bit(tmp_path, capsys):
    source = image_folder(tmp_path / "in")
    options = ["--model", "fast_x2", "--quality", "90"]
    assert main(["upscale", str(source), "-o", str(tmp_path / "local"), *options]) == 0
    ray_run = ["upscale", str(source), "-o", str(tmp_path / "ray"), *options, "--ray"]
    assert within(JOB_SECONDS, main, [*ray_run, "--workers", "2"]) == 0
    assert files(tmp_path / "ray") == files(tmp_path / "local") and len(files(source)) == 8
    assert "8 done, 0 failed, 0 skipped" in capsys.readouterr().out
    assert within(JOB_SECONDS, main, [*ray_run, "--skip-existing"]) == 0
    assert "0 done, 0 failed, 8 skipped (8 output exists)" in capsys.readouterr().out


def test_folder_on_ray_runs_the_precision_asked_for(tmp_path):
    source = image_folder(tmp_path / "in", count=2)
    runs = {}
    for name, precision, ray_options in [("fp32", "fp32", []), ("int8", "int8", []),
                                         ("ray", "int8", ["--ray", "--workers", "1"])]:  # fmt: skip
        argv = ["upscale", str(source), "-o", str(tmp_path / name), "--model", "fast_x2",
                "--precision", precision, *ray_options]  # fmt: skip
        assert within(JOB_SECONDS, main, argv) == 0
        runs[name] = files(tmp_path / name)
    assert runs["ray"] == runs["int8"] != runs["fp32"]


def test_ray_is_imported_only_when_used(tmp_path):
    source = image_folder(tmp_path / "in", count=1)
    probe = (
        "import sys; from fastsr.cli import main; import fastsr.distributed; "
        f"main(['upscale', {str(source)!r}, '-o', {str(tmp_path / 'out')!r}]); "
        "print([m for m in sys.modules if m.split('.')[0] == 'ray'])"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert len(list((tmp_path / "out").iterdir())) == 1


def test_workers_of_an_instance_started_for_the_run_keep_the_callers_niceness():
    probe = (
        "import os; from fastsr.distributed import ray_session\n"
        "with ray_session() as ray:\n"
        "    print(os.nice(0), ray.get(ray.remote(lambda: os.nice(0)).remote()))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=JOB_SECONDS)  # fmt: skip
    assert done.returncode == 0, done.stderr
    driver, worker = done.stdout.split()[-2:]
    assert worker == driver  # Ray's default: the driver's + 15


def test_an_image_that_fails_is_reported_and_the_rest_done(tmp_path, capsys):
    source = image_folder(tmp_path / "in", count=4)
    good = (source / "image1.png").read_bytes()
    (source / "broken.png").write_bytes(good[: len(good) // 2])
    argv = ["upscale", str(source), "-o", str(tmp_path / "out"), "--model", "fast_x2", "--ray"]
    assert within(JOB_SECONDS, main, argv) == 1  # as the local CLI: some image failed
    out, err = capsys.readouterr()
    assert "4 done, 1 failed, 0 skipped" in out
    assert "broken.png" in err and "not a readable image" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in source.iterdir() if p.name != "broken.png"
    )


@pytest.fixture
def bar_updates(monkeypatch) -> list[int]:
    """What each progress bar of the test is told, call by call."""
    import tqdm

    updates = []

    class Recorder(tqdm.tqdm):
        def update(self, n=1):
            updates.append(n)
            return super().update(n)

    monkeypatch.setattr(tqdm, "tqdm", Recorder)
    return updates


def test_the_folder_progress_bar_moves_image_by_image(tmp_path, bar_updates):

    from fastsr.batch import plan_batch
    from fastsr.distributed import run_batch_on_ray

    source = noise_pngs(tmp_path / "in", 6, 96, 128, seed=5)
    batch = plan_batch([source], tmp_path / "out")
    options = {"model": "quality_x2", "backend": "cpu"}
    report = within(JOB_SECONDS, run_batch_on_ray, batch, options, workers=1,
                    threads_per_worker=2, batch_size=6, progress=True)  # fmt: skip
    assert len(report.done) == 6
    assert sum(bar_updates) == 6
    assert len([n for n in bar_updates if n > 0]) > 1, f"one batch of 6 came as {bar_updates}"


def test_the_ray_options_need_ray(tmp_path, capsys):
    argv = ["upscale", str(image_folder(tmp_path / "in", 1)), "-o", str(tmp_path / "out")]
    assert main([*argv, "--workers", "2"]) == 1
    assert "need --ray" in capsys.readouterr().err


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """3 s, keyframes about every second, audio: >= 3 segments of 0.5 s or more."""
    return keyframed_clip(tmp_path_factory.mktemp("clips") / "clip.mkv", width=64, height=48)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, clip):
    up = fastsr.Upscaler(**MODEL)
    out = tmp_path_factory.mktemp("local") / "out.mkv"
    return upscale_video(clip, out, up, codec="ffv1", progress=False).path


def assert_same_video(path, reference):
    output, expected = probe(path), probe(reference)
    assert output["times"] == expected["times"] and len(output["times"]) > 0
    assert output["audio"] and output["audio"] == expected["audio"]
    frames, reference_frames = decoded(path), decoded(reference)
    assert len(frames) == len(reference_frames)
    assert all(np.array_equal(a, b) for a, b in zip(frames, reference_frames, strict=True))


def test_video_on_ray_equals_the_local_run(tmp_path, clip, local_run, capsys):
    assert len(plan_segments(clip, 0.5)) >= 3
    dst = tmp_path / "out.mkv"
    argv = ["video", str(clip), str(dst), "--model", "fast_x2", "--codec", "ffv1", "--ray",
            "--segment-seconds", "0.5", "--workers", "2"]  # fmt: skip
    assert within(JOB_SECONDS, main, argv) == 0
    assert f"{dst}: 36 frames" in capsys.readouterr().out
    assert_same_video(dst, local_run)
    assert not job_folder(dst).exists()


def test_the_video_progress_bar_moves_as_the_workers_upscale(tmp_path, bar_updates):
    clip = keyframed_clip(tmp_path / "in.mkv", seconds=4, width=320, height=240)
    result = within(JOB_SECONDS, upscale_video_on_ray, clip, tmp_path / "out.mkv", MODEL,
                    codec="ffv1", segment_seconds=0.5, workers=1, progress=True)  # fmt: skip
    assert sum(bar_updates) == result.frames == 48
    assert len([n for n in bar_updates if n > 0]) > 1, f"48 frames came as {bar_updates}"


def workers(title: str) -> list[int]:
    """Process ids of the Ray workers whose process title has `title` in it (Ray names
    a worker by its actor class, and adds the method while one runs)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and title in (entry / "cmdline").read_text():
                found.append(int(entry.name))
        except OSError:  # the process ended while we looked
            continue
    return found


def kill_one_worker_when(ready, title: str) -> tuple[threading.Thread, list]:
    """A thread that SIGKILLs one busy worker once ready() says the job is under way."""
    killed = []

    def watch():
        deadline = time.monotonic() + JOB_SECONDS
        while time.monotonic() < deadline and not killed:
            busy = workers(title)
            if busy and ready():
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, killed


def test_an_image_worker_killed_mid_job_loses_nothing(tmp_path):

    source = noise_pngs(tmp_path / "in", 12, 160, 200, seed=3)
    options = ["--model", "quality_x2"]
    assert main(["upscale", str(source), "-o", str(tmp_path / "local"), *options]) == 0
    out = tmp_path / "ray"
    watcher, killed = kill_one_worker_when(
        lambda: out.is_dir() and any(out.glob("*.png")), "_Worker.images"
    )
    argv = ["upscale", str(source), "-o", str(out), *options, "--ray", "--workers", "2"]
    assert within(JOB_SECONDS, main, argv) == 0
    watcher.join(5)
    assert killed, "the job ended before a worker could be killed"
    assert files(out) == files(tmp_path / "local")


def test_an_image_that_kills_its_worker_every_time_fails_alone(tmp_path):
    from PIL import Image

    from fastsr.batch import plan_batch
    from fastsr.distributed import run_batch_on_ray

    source = image_folder(tmp_path / "in", count=3)
    noise = np.random.default_rng(11).integers(0, 256, (700, 700, 3), np.uint8)
    Image.fromarray(noise).save(source / "poison.png")  # last; its output takes a while
    out = tmp_path / "out"
    poisoned = out / ".poison.fastsr-partial.png"  # there only while a worker writes it
    kills = []

    def kill_whoever_writes_it():
        deadline = time.monotonic() + JOB_SECONDS
        while time.monotonic() < deadline and len(kills) < 3:
            if poisoned.exists():
                for pid in workers("_Worker.images"):
                    os.kill(pid, signal.SIGKILL)
                    kills.append(pid)
                poisoned.unlink(missing_ok=True)  # what the dead worker left
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_whoever_writes_it, daemon=True)
    watcher.start()
    report = within(JOB_SECONDS, run_batch_on_ray, plan_batch([source], out), MODEL,
                    workers=1, batch_size=4, progress=False)  # fmt: skip
    watcher.join(5)
    assert len(kills) == 3  # in its batch of 4, then alone twice (the retries)
    assert [r.source.name for r in report.failed] == ["poison.png"] and len(report.done) == 3
    assert "its Ray worker died (3 times" in report.failed[0].reason
    local = tmp_path / "local"
    (source / "poison.png").unlink()
    assert main(["upscale", str(source), "-o", str(local), "--model", "fast_x2"]) == 0
    assert files(out) == files(local)


def test_a_batch_retried_after_its_worker_died_counts_each_image_once(tmp_path, monkeypatch):
    import tqdm

    from fastsr.batch import plan_batch
    from fastsr.distributed import run_batch_on_ray

    source = noise_pngs(tmp_path / "in", 6, 160, 200, seed=4)
    out = tmp_path / "out"
    counts = []  # (images on the bar, outputs written) at each update

    class Recorder(tqdm.tqdm):
        def update(self, n=1):
            super().update(n)
            counts.append((self.n, len(list(out.glob("[0-9].png")))))

    monkeypatch.setattr(tqdm, "tqdm", Recorder)
    watcher, killed = kill_one_worker_when(
        lambda: len(list(out.glob("[0-9].png"))) >= 2, "_Worker.images"
    )
    report = within(JOB_SECONDS, run_batch_on_ray, plan_batch([source], out),
                    {"model": "quality_x2", "backend": "cpu"}, workers=1, batch_size=6,
                    progress=True)  # fmt: skip
    watcher.join(5)
    assert killed, "the job ended before a worker could be killed"
    assert len(report.done) == 6 and counts[-1] == (6, 6)
    assert all(on_bar <= written for on_bar, written in counts), counts


def test_a_segment_retried_after_its_worker_died_counts_each_frame_once(tmp_path, bar_updates):
    clip = keyframed_clip(tmp_path / "in.mkv", seconds=4, width=320, height=240)
    watcher, killed = kill_one_worker_when(  # once the bar has some of the one segment
        lambda: 0 < sum(bar_updates) < 40, "_Worker.segment"
    )
    result = within(JOB_SECONDS, upscale_video_on_ray, clip, tmp_path / "out.mkv", MODEL,
                    codec="ffv1", segment_seconds=4, workers=1, progress=True)  # fmt: skip
    watcher.join(5)
    assert killed, "the job ended before a worker could be killed"
    assert sum(bar_updates) == result.frames == 48


def test_more_workers_than_cores_all_start(tmp_path):
    source, out = str(image_folder(tmp_path / "in", 4)), str(tmp_path / "out")
    probe = (
        "import os, sys; from fastsr.batch import plan_batch\n"
        "from fastsr.distributed import run_batch_on_ray\n"
        f"batch = plan_batch([{source!r}], {out!r})\n"
        "report = run_batch_on_ray(batch, {'model': 'fast_x2', 'backend': 'cpu'},\n"
        "                          workers=os.cpu_count() + 2, batch_size=1)\n"
        "print(len(report.done))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=JOB_SECONDS)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "4"


def test_a_worker_killed_mid_job_loses_nothing(tmp_path):
    clip = keyframed_clip(tmp_path / "big.mkv", seconds=4, width=320, height=240)
    reference = upscale_video(clip, tmp_path / "local.mkv", fastsr.Upscaler(**MODEL),
                              codec="ffv1", progress=False).path  # fmt: skip
    dst = tmp_path / "out.mkv"
    manifest = job_folder(dst) / "manifest.json"
    watcher, killed = kill_one_worker_when(  # once a segment is done and another under way
        lambda: manifest.exists() and json.loads(manifest.read_text())["done"],
        "_Worker.segment",
    )
    result = within(JOB_SECONDS, upscale_video_on_ray, clip, dst, MODEL, codec="ffv1",
                    segment_seconds=0.5, workers=2, progress=False)  # fmt: skip
    watcher.join(5)
    assert killed, "the job ended before a worker could be killed"
    assert result.frames == 48
    assert_same_video(dst, reference)


def test_a_segment_that_fails_for_good_is_reported_and_the_rest_kept(tmp_path, capsys):
    clean = make_clip(tmp_path / "clean.mkv", frames=36, audio=False, codec="ffv1")
    damaged = damage_packet(clean, tmp_path / "damaged.mkv", 20)
    segments = plan_segments(damaged, 0.5)
    bad = next(s for s in segments if s.start is not None and s.start <= 1667 < (s.end or 1e9))
    dst = tmp_path / "out.mkv"
    argv = ["video", str(damaged), str(dst), "--model", "fast_x2", "--codec", "ffv1",
            "--strict", "--ray", "--segment-seconds", "0.5"]  # fmt: skip
    assert within(JOB_SECONDS, main, argv) == 1
    err = capsys.readouterr().err
    assert f"segment {bad.index}: undecodable video packet at 1.667 s" in err
    assert f"{len(segments) - 1} of {len(segments)} segments done" in err and not dst.exists()
    done = json.loads((job_folder(dst) / "manifest.json").read_text())["done"]
    assert sorted(map(int, done)) == [s.index for s in segments if s is not bad]
    with pytest.raises(JobIncomplete, match=f"segment {bad.index}"):
        within(JOB_SECONDS, upscale_video_on_ray, damaged, dst, MODEL, codec="ffv1",
               strict=True, resume=True, progress=False)  # fmt: skip


# -- the instance started for the run ------------------------------------------------------


def descendants(pid: int) -> dict[tuple[int, str], str]:
    """{(pid, start time): command line} of every live process under `pid`, by /proc."""
    parents, started = {}, {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit():
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if fields[0] != "Z":
                    parents[int(entry.name)], started[int(entry.name)] = int(fields[1]), fields[19]
        except OSError:  # the process ended while we looked
            continue
    found, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child in [child for child, p in parents.items() if p == parent]:
            try:
                line = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            found[child, started[child]] = line.decode(errors="replace")
            todo.append(child)
    return found


def still_running(processes) -> dict[tuple[int, str], str]:
    """Those of `processes` ({(pid, start time): command lines}) alive, not zombies, after
    up to 10 s, with the last command line seen."""
    deadline = time.monotonic() + 10
    while True:
        alive = {}
        for pid, start in processes:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and fields[19] == start:
                alive[pid, start] = sorted(processes[pid, start])[-1][:160]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def module_instance() -> set[tuple[int, str]]:
    """The GCS and raylet of the test module's own Ray instance (`cluster`)."""
    return {key for key, line in descendants(os.getpid()).items()
            if line.split(" ")[0].endswith(("gcs_server", "raylet"))}  # fmt: skip


FOLDER_JOB = (
    "import sys\n"
    "from fastsr.batch import plan_batch\n"
    "from fastsr.distributed import run_batch_on_ray\n"
    "batch = plan_batch([sys.argv[1]], sys.argv[2])\n"
    "report = run_batch_on_ray(batch, {'model': sys.argv[3], 'backend': 'cpu'}, workers=1,\n"
    "                          threads_per_worker=2, address=sys.argv[4] or None)\n"
    "print(len(report.done), 'done')\n"
)
TRIMMED_START_BROKEN = (  # a Ray whose private node API lost a parameter fastsr passes
    "import ray._private.parameter as parameter\n"
    "real = parameter.RayParams\n"
    "def params(**kwargs):\n"
    "    if 'no_monitor' in kwargs:\n"
    "        raise TypeError(\"unexpected keyword argument 'no_monitor'\")\n"
    "    return real(**kwargs)\n"
    "parameter.RayParams = params\n"
)
CTRL_C_DELIVERED = (  # a shell's background job (CI's) starts with SIGINT ignored, kept by
    "import signal\n"  # Python and its children, so a test's SIGINT would never arrive
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
)
NO_DRIVER_LANE = (  # all images on the Ray worker: a 4-image job is over before it starts
    "import contextlib, fastsr.distributed as distributed\n"
    "distributed._driver_lane = lambda *args: contextlib.nullcontext()\n"
)
DRIVER_FAILS_MID_JOB = NO_DRIVER_LANE + (  # the driver's loop fails while its worker works
    "real = distributed._Pool.streamed\n"
    "def streamed(pool):\n"
    "    yield from real(pool)\n"
    "    if pool.running:\n"
    "        raise OSError('disk full')\n"
    "distributed._Pool.streamed = streamed\n"
)


def run_job(tmp_path, *, model="fast_x2", images=4, address="", prelude="", stop=None):
    """The folder job of FOLDER_JOB over `images` images in a driver of its own,
    optionally sent the signal `stop` = (signal, process) once a process running
    `process` shows up under it: (the driver's exit, {(pid, start): command lines} of
    every process seen under it while it ran; a Ray worker retitles itself as it goes)."""
    source = tmp_path / "in"
    if not source.exists():
        noise_pngs(source, images, 96, 128, seed=9)
    if stop and stop[0] == signal.SIGINT:  # as a terminal's Ctrl-C finds a foreground job
        prelude = CTRL_C_DELIVERED + prelude
    argv = [sys.executable, "-c", prelude + FOLDER_JOB, str(source), str(tmp_path / "out"),
            model, address]  # fmt: skip
    driver = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, deadline = {}, time.monotonic() + JOB_SECONDS
    while driver.poll() is None and time.monotonic() < deadline:
        for process, line in descendants(driver.pid).items():
            seen.setdefault(process, set()).add(line)
        if stop and started(seen, stop[1]):
            driver.send_signal(stop[0])
            stop = None
        time.sleep(0.05)
    try:
        out, err = driver.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        driver.kill()
        pytest.fail(f"the driver took more than {JOB_SECONDS} s")
    return subprocess.CompletedProcess(argv, driver.returncode, out, err), seen


def started(seen: dict, *names: str) -> bool:
    """Whether any process seen ran one of these programs or Python scripts."""
    return any(name in line for lines in seen.values() for line in lines for name in names)


def test_an_instance_started_for_the_run_starts_no_monitors_and_ends_with_the_job(tmp_path):
    before = module_instance()
    done, seen = run_job(tmp_path)
    assert done.returncode == 0 and done.stdout.split()[-2:] == ["4", "done"], done.stderr
    assert started(seen, "/raylet ")  # an instance of its own
    assert not started(seen, "monitor.py", "log_monitor.py", "dashboard/dashboard.py")
    assert "trimmed" not in done.stderr
    assert not still_running(seen)
    assert module_instance() == before and ray.get(ray.remote(lambda: 1).remote()) == 1


@pytest.mark.parametrize("when", ["/raylet ", "_Worker.images"], ids=["starting", "mid-job"])
@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_instance_started_for_the_run_ends_when_the_driver_is_stopped(tmp_path, sent, when):
    before = module_instance()
    # ~7 s of work here: a scan of /proc under CI's load can outlast a short job, and a
    # signal sent after the driver has finished proves nothing
    done, seen = run_job(tmp_path, model="quality_x2", images=200, stop=(sent, when))
    assert done.returncode != 0 and "done" not in done.stdout, done.stdout
    assert not still_running(seen)
    assert module_instance() == before and ray.get(ray.remote(lambda: 1).remote()) == 1


def test_an_instance_started_for_the_run_ends_after_a_failing_job(tmp_path):
    done, seen = run_job(tmp_path, prelude=DRIVER_FAILS_MID_JOB)
    assert done.returncode != 0 and "OSError: disk full" in done.stderr
    assert started(seen, "/raylet ")
    assert not still_running(seen)


def test_a_trimmed_start_that_fails_falls_back_to_rays_default(tmp_path):
    done, seen = run_job(tmp_path, prelude=TRIMMED_START_BROKEN)
    assert done.returncode == 0 and done.stdout.split()[-2:] == ["4", "done"], done.stderr
    assert "the trimmed local instance did not start" in done.stderr
    assert "no_monitor" in done.stderr
    assert started(seen, "monitor.py")  # Ray's default start
    assert not still_running(seen)


def test_a_users_instance_is_used_and_left_running(tmp_path):
    before = module_instance()
    address = ray.get_runtime_context().gcs_address
    done, seen = run_job(tmp_path, address=address)
    assert done.returncode == 0 and done.stdout.split()[-2:] == ["4", "done"], done.stderr
    assert not started(seen, "/raylet ", "/gcs_server ")
    assert module_instance() == before and ray.get(ray.remote(lambda: 1).remote()) == 1


DRIVER_SLOWED = (  # each image or segment the driver upscales itself takes 1 s more; those
    "import atexit, json, sys, time, tqdm\n"  # and the progress bar's steps are printed
    "import fastsr.distributed as distributed\n"
    "real_images, real_segment = distributed._images, distributed._segment\n"
    "by_driver, bar = [], []\n"
    "def images(up, jobs, *rest):\n"
    "    time.sleep(1)\n"
    "    by_driver.append(jobs[0][0])\n"
    "    yield from real_images(up, jobs, *rest)\n"
    "def segment(up, src, path, segment, *rest):\n"
    "    time.sleep(1)\n"
    "    by_driver.append(segment.index)\n"
    "    yield from real_segment(up, src, path, segment, *rest)\n"
    "distributed._images, distributed._segment = images, segment\n"
    "class Bar(tqdm.tqdm):\n"
    "    def update(self, n=1):\n"
    "        bar.append(n)\n"
    "        return super().update(n)\n"
    "tqdm.tqdm = Bar\n"
    "atexit.register(lambda: print(json.dumps({'by_driver': by_driver, 'bar': bar})))\n"
)


def slowed_driver(job: str, *args) -> dict:
    """`job` run by a driver of its own with DRIVER_SLOWED: {"by_driver": the images' or
    segments' indexes the driver upscaled itself, "bar": the progress bar's steps}."""
    argv = [sys.executable, "-c", DRIVER_SLOWED + job, *map(str, args)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=JOB_SECONDS)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_a_run_that_starts_its_instance_upscales_on_the_driver_until_its_worker_starts(tmp_path):
    from fastsr.batch import plan_batch, run_batch

    source = noise_pngs(tmp_path / "in", 30, 48, 64, seed=3)
    local = run_batch(fastsr.Upscaler(**MODEL), plan_batch([source], tmp_path / "local"))
    assert len(local.done) == 30
    job = (
        "from fastsr.batch import plan_batch\n"
        "batch = plan_batch([sys.argv[1]], sys.argv[2])\n"
        "distributed.run_batch_on_ray(batch, {'model': 'fast_x2', 'backend': 'cpu'}, workers=1,\n"
        "                             progress=True)\n"
    )
    run = slowed_driver(job, source, tmp_path / "ray")
    assert 1 <= len(run["by_driver"]) < 30  # the first ones; the Ray worker did the rest
    assert sum(run["bar"]) == 30  # each image once
    assert files(tmp_path / "ray") == files(tmp_path / "local")


def test_a_video_run_that_starts_its_instance_equals_the_local_run(tmp_path, clip, local_run):
    job = (
        "distributed.upscale_video_on_ray(sys.argv[1], sys.argv[2], {'model': 'fast_x2',\n"
        "    'backend': 'cpu'}, codec='ffv1', segment_seconds=0.5, workers=1, progress=True)\n"
    )
    run = slowed_driver(job, clip, tmp_path / "out.mkv")
    assert run["by_driver"][:1] == [0]  # the first segment at least
    assert sum(run["bar"]) == 36  # each frame once
    assert_same_video(tmp_path / "out.mkv", local_run)
