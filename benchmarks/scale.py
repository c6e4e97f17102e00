"""What scaling out costs: each stage's work per file (and per candidate pair), run as one
process, as 2 local processes, and as tasks on a 2-worker dask.distributed LocalCluster, with the
bytes each result sends back to the client. The figures behind docs/SCALE.md.

Stages: audit (decode + checks + SHA-256), hash (all hash channels), features (verification's
keypoints and band-passed images), skew (orientation from one image), verify (one candidate
pair; candidates from the hashed files, as `curate dups` finds them). Results are the stage
functions' own, so what travels back is what a cluster run would send. Prints a table.

    .venv/bin/python benchmarks/scale.py --files 600 --pairs 1500
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate import candidates, dedup, verify  # noqa: E402
from curate.audit import audit, audit_file  # noqa: E402
from curate.hashing import hash_images, hash_with_sha  # noqa: E402
from curate.layout import scan  # noqa: E402
from curate.parallel import cluster_executor, map_files  # noqa: E402
from curate.skew import skew_file  # noqa: E402
import fracatlas  # noqa: E402  (benchmarks/fracatlas.py: where FracAtlas is)

FRACATLAS = fracatlas.FRACATLAS / "images"


def timed(func, items, workers, shared=None):
    """(wall seconds, CPU seconds of this process, results). With workers=1 map_files runs
    in this process, so its CPU time is the work's own, whatever else the machine runs."""
    t, cpu = time.perf_counter(), time.process_time()
    out = map_files(func, items, workers=workers, shared=shared)
    return time.perf_counter() - t, time.process_time() - cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=FRACATLAS)
    ap.add_argument("--files", type=int, default=600)
    ap.add_argument("--pairs", type=int, default=1500)
    args = ap.parse_args()

    from distributed import LocalCluster

    table = scan(args.root).sort_values("path").head(args.files).reset_index(drop=True)
    paths = [args.root / p for p in table["path"]]
    hashed = hash_images(audit(table, args.root), args.root, workers=2)
    ok = hashed["hash_status"] == "ok"
    cpu = time.process_time()
    pairs = candidates.candidate_pairs(hashed)
    search_cpu = time.process_time() - cpu
    print(f"{len(paths):,} files from {args.root} ({int(ok.sum()):,} decode), "
          f"{len(pairs):,} candidate pairs ({len(pairs) / max(1, int(ok.sum())):.1f} per image)")
    feats = map_files(verify.features, [str(p) for p in paths], workers=2)
    shared = {i: f for i, f in enumerate(feats) if f is not None}
    todo = pairs[~pairs["channel"].isin(["sha256", "pixel_hash"])].head(args.pairs)  # as find_duplicates
    batch = [verify.Pair(int(r.a), int(r.b), bool(r.variant % 2),
                        int(r.variant) if r.channel in dedup.FRAME_CHANNELS else None,
                        r.channel not in dedup.NO_REFINE_CHANNELS)
             for r in todo.itertuples(index=False) if int(r.a) in shared and int(r.b) in shared]
    batches = [batch[i:i + 64] for i in range(0, len(batch), 64)]

    str_paths = [str(p) for p in paths]
    stages = [("audit", audit_file, paths, None, len(paths)),
              ("hash", hash_with_sha, paths, None, len(paths)),
              ("features", verify.features, str_paths, None, len(paths)),
              ("skew", skew_file, paths, None, len(paths)),
              ("verify (per pair)", verify.verify_batch, batches, shared, len(batch))]
    rows = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            cluster_executor(cluster.scheduler_address) as executor:
        for name, func, items, sh, n in stages:
            t1, cpu1, out = timed(func, items, 1, sh)
            t2, _, _ = timed(func, items, 2, sh)
            if func is verify.verify_batch:  # on a cluster each batch makes its own files' features
                t, cpu = time.perf_counter(), time.process_time()
                again = verify.verify_pairs(batch, str_paths, workers=executor)
                tc, client_cpu = time.perf_counter() - t, time.process_time() - cpu
                assert again == [m for b in out for m in b], "the cluster verified differently"
            else:
                t, cpu = time.perf_counter(), time.process_time()
                again = map_files(func, items, workers=executor, shared=sh)
                tc, client_cpu = time.perf_counter() - t, time.process_time() - cpu
                assert len(again) == len(out)
            sent = sum(len(pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)) for r in out)
            rows.append({"stage": name, "items": n, "CPU ms/item": 1000 * cpu1 / n, "ms/item, 1 process": 1000 * t1 / n,
                         "ms/item, 2 processes": 1000 * t2 / n, "ms/item, dask 2 workers": 1000 * tc / n,
                         "client CPU ms/item, dask": 1000 * client_cpu / n,
                         "bytes back/item": sent / n})
    per_batch = [len({i for p in b for i in (p.a, p.b)}) for b in
                 [batch[i:i + verify.VERIFY_BATCH] for i in range(0, len(batch), verify.VERIFY_BATCH)]]
    distinct = len({i for p in batch for i in (p.a, p.b)})
    shared_bytes = sum(len(pickle.dumps(f, protocol=pickle.HIGHEST_PROTOCOL)) for f in shared.values()) / len(shared)
    pd.set_option("display.width", 200)
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:,.2f}"))
    print(f"features per file: {shared_bytes:,.0f} bytes (locally shared with every worker; on a cluster made "
          f"in each verify batch: {sum(per_batch) / max(1, distinct):.2f} times per file here)")
    print(f"candidate search on the client (all channels): {1000 * search_cpu / max(1, int(ok.sum())):.2f} CPU ms per image")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
