"""--cluster: the same run on a dask.distributed cluster. A LocalCluster of two worker
processes stands in for a real one: the manifest must match a local run byte for byte, a
worker that dies mid-task must not change the result, and an unreachable scheduler is one line."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("distributed")

from distributed import Client, LocalCluster  # noqa: E402

from curate import parallel  # noqa: E402
from curate.cli import app  # noqa: E402
from curate.messy import build_messy, load_bases, sample_dir  # noqa: E402
from curate.parallel import cluster_executor, map_files  # noqa: E402
from curate.pipeline import run_pipeline  # noqa: E402
from curate.workspace import Workspace  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def messy_root(tmp_path_factory) -> Path:
    """A small messy set (copies across splits, broken and odd files) from 24 bundled images."""
    bases = load_bases(sample_dir())
    bases = bases[:12] + bases[-12:]  # both classes
    dest = tmp_path_factory.mktemp("cluster") / "messy"
    build_messy([(b.path, b.label) for b in bases], dest, seed=3, n_broken=5, n_odd=9)
    return dest


def _manifest_bytes(root: Path, workdir: Path, workers) -> bytes:
    ws = Workspace.for_root(root, "messy", workdir)
    _, _, _, written = run_pipeline(root, ws, workers=workers, report=False)
    return Path(written["manifest_csv"]).read_bytes()


def test_a_cluster_run_writes_the_same_manifest_as_a_local_run(cluster, messy_root, tmp_path):
    local = _manifest_bytes(messy_root, tmp_path / "local", 1)
    with cluster_executor(cluster.scheduler_address) as executor:
        on_cluster = _manifest_bytes(messy_root, tmp_path / "cluster", executor)
    assert on_cluster == local
    assert b",corrupt," in on_cluster  # bad files got their status on the workers too


def _double_but_die_once(item: tuple[str, int]) -> int:
    """Kills the worker process the first time it meets 7 (a marker file remembers)."""
    marker, value = item
    if value == 7 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return 2 * value


def test_a_worker_killed_mid_run_has_its_tasks_run_elsewhere(cluster, tmp_path):
    items = [(str(tmp_path / "died"), v) for v in range(40)]
    with cluster_executor(cluster.scheduler_address) as executor:
        results = map_files(_double_but_die_once, items, workers=executor, chunk_size=4)
    assert (tmp_path / "died").exists()  # a worker really died
    assert results == [2 * v for v in range(40)]


def test_a_worker_killed_during_a_run_leaves_the_manifest_unchanged(cluster, messy_root, tmp_path):
    local = _manifest_bytes(messy_root, tmp_path / "local", 1)
    killed, stop = [], threading.Event()

    def kill_a_busy_worker(client):  # the first time a worker is running a task, its process exits
        while not stop.is_set():
            busy = [addr for addr, tasks in client.processing().items() if tasks]
            if busy:
                killed.append(busy[0])
                try:
                    client.run(os._exit, 1, workers=busy[:1])
                except Exception:  # noqa: BLE001 - the worker dies before it can answer
                    pass
                return
            time.sleep(0.02)

    with Client(cluster.scheduler_address, set_as_default=False) as client, \
            cluster_executor(cluster.scheduler_address) as executor:
        watcher = threading.Thread(target=kill_a_busy_worker, args=(client,), daemon=True)
        watcher.start()
        on_cluster = _manifest_bytes(messy_root, tmp_path / "cluster", executor)
        stop.set()
        watcher.join()
        assert killed, "no worker was killed while the run was busy"
        assert killed[0] not in client.scheduler_info()["workers"]  # it really died (its nanny started a new one)
    assert on_cluster == local


def test_an_unreachable_scheduler_is_one_line_and_exit_2(monkeypatch, tmp_path):
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT", 1)
    result = CliRunner().invoke(app, ["audit", str(sample_dir()), "--workdir", str(tmp_path),
                                      "--cluster", "tcp://127.0.0.1:1", "-q"])
    assert result.exit_code == 2
    assert "cannot reach the dask scheduler at tcp://127.0.0.1:1" in result.output
    assert "Traceback" not in result.output


def test_the_cluster_address_can_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT", 1)
    monkeypatch.setenv("CURATE_CLUSTER", "tcp://127.0.0.1:1")
    result = CliRunner().invoke(app, ["hash", str(sample_dir()), "--workdir", str(tmp_path), "-q"])
    assert result.exit_code == 2 and "cannot reach the dask scheduler" in result.output


def test_without_a_cluster_nothing_of_dask_is_imported(tmp_path):
    code = ("import sys; from typer.testing import CliRunner; from curate.cli import app; "
            f"r = CliRunner().invoke(app, ['audit', {str(sample_dir())!r}, '--workdir', {str(tmp_path)!r}, '-q']); "
            "assert r.exit_code == 0, r.output; "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]")
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("CURATE_CLUSTER", None)
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
