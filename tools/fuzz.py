"""Long fuzz runs: the families of tests/fuzz at any size, in parallel worker processes.

Each family's cases are split into chunks with their own seeds; a pool of worker processes
runs the chunks (each case under the per-call deadline and traced-memory cap of
tests/fuzz/fuzz_harness.py) and the tallies are merged. A worker that dies (the hang
watchdog, a hard crash) is reported as a failure of its chunk. Exit status 1 on any crash,
hang, slow or memory-hungry call or disagreement.

Usage::

    python tools/fuzz.py --texts 100000 --files 10000 --importers 10000 --attention 2000 \\
        --workers 2 --json fuzz_out.json

Example (as a module):
    >>> import subprocess, sys
    >>> r = subprocess.run([sys.executable, "tools/fuzz.py", "--texts", "30", "--files", "0", "--importers", "0",
    ...                     "--attention", "0", "--bad-inputs", "0", "--workers", "1"], capture_output=True, text=True)
    >>> r.returncode, "dsl" in r.stdout
    (0, True)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FUZZ_DIR = ROOT / "tests" / "fuzz"


def _init() -> None:
    os.environ.setdefault("TRITON_INTERPRET", "1")
    for p in (str(ROOT), str(FUZZ_DIR)):
        if p not in sys.path:
            sys.path.insert(0, p)


def _chunk(family: str, n: int, seed: int, trace: bool) -> dict[str, Any]:
    _init()
    from fuzz_families import run_family

    t0 = time.perf_counter()
    d = run_family(family, n, seed, trace).as_dict()
    d["wall_s"] = time.perf_counter() - t0
    d["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return d


def _merge(into: dict[str, Any], d: dict[str, Any]) -> None:
    for key in ("outcomes", "extra"):
        for k, v in d[key].items():
            into[key][k] = into[key].get(k, 0) + v
    into["calls"] += d["calls"]
    into["failures"] += d["failures"]
    into["first_failures"].extend(d["first_failures"][: max(0, 20 - len(into["first_failures"]))])
    into["chunk_wall_s"] += d["wall_s"]
    into["worker_maxrss_mb"] = max(into["worker_maxrss_mb"], d["maxrss_mb"])
    for key, label in (("max_seconds", "slowest"), ("max_bytes", "hungriest")):
        if d[key] > into[key]:
            into[key], into[label] = d[key], d[label]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in (("texts", 2000), ("files", 500), ("importers", 500), ("attention", 50),
                          ("bad-inputs", 200)):
        ap.add_argument(f"--{name}", type=int, default=default, help=f"number of {name} cases")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=0, help="cases per chunk (default: per family)")
    ap.add_argument("--no-trace", action="store_true", help="skip tracemalloc (faster, no memory figures)")
    ap.add_argument("--json", type=Path, help="write the merged tallies here")
    a = ap.parse_args(argv)
    sizes = {"dsl": a.texts, "files": a.files, "importers": a.importers, "attention": a.attention,
             "bad_inputs": a.bad_inputs}
    chunk = {"dsl": 2500, "files": 1000, "importers": 2500, "attention": 50, "bad_inputs": 1000}
    jobs = []
    for fam, n in sizes.items():
        size = a.chunk or chunk[fam]
        for k, start in enumerate(range(0, n, size)):
            jobs.append((fam, min(size, n - start), a.seed * 100_000 + k))
    jobs.sort(key=lambda j: j[0] != "attention")  # the slowest chunks first
    res = {f: {"calls": 0, "outcomes": {}, "extra": {}, "failures": 0, "first_failures": [], "max_seconds": 0.0,
               "slowest": "", "max_bytes": 0, "hungriest": "", "chunk_wall_s": 0.0, "worker_maxrss_mb": 0}
           for f in sizes}
    t0 = time.time()
    with ProcessPoolExecutor(a.workers, mp_context=get_context("spawn"), initializer=_init) as pool:
        futs = {pool.submit(_chunk, fam, n, seed, not a.no_trace): (fam, n, seed) for fam, n, seed in jobs}
        for fut in as_completed(futs):
            fam, n, seed = futs[fut]
            try:
                _merge(res[fam], fut.result())
            except BrokenProcessPool as e:  # a watchdog exit or a hard crash
                res[fam]["failures"] += 1
                res[fam]["first_failures"].append(f"worker died in chunk seed={seed}: {e}")
                break
            print(f"[{time.time() - t0:7.0f} s] {fam} chunk seed={seed}: {res[fam]['calls']:,} calls so far",
                  flush=True)
    summary = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "wall_s": round(time.time() - t0, 1),
               "command": "python tools/fuzz.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "cpus": os.cpu_count(), "families": res}
    print(json.dumps(summary, indent=1))
    if a.json:
        a.json.write_text(json.dumps(summary, indent=1))
    return 1 if any(r["failures"] for r in res.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
