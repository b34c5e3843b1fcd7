"""Bounded load test of the on-device service: N predict requests at concurrency C
while a personalization job runs. Loopback only. Not a CI test.

    python -m benchmarks.runtime.load_service --model BUNDLE_OR_STATE --requests 400 --concurrency 8

Starts ``edgeft serve`` on a free 127.0.0.1 port with a throw-away state folder
(or uses ``--url`` of a running service on loopback), posts labelled examples,
starts a personalization job, fires the requests, and prints errors (expected 0),
latency percentiles, throughput, how many requests were answered while the job
ran, and the job's outcome. Exits 1 if any request failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

MAX_REQUESTS = 20_000  # the test is bounded in count ...
MAX_CONCURRENCY = 64
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 1 <= args.requests <= MAX_REQUESTS or not 1 <= args.concurrency <= MAX_CONCURRENCY:
        raise SystemExit(f"--requests must be 1..{MAX_REQUESTS} and --concurrency 1..{MAX_CONCURRENCY}")
    texts, labels = _examples(args.examples)
    with _service(args) as url:
        _call(url, "POST", "/v1/examples", {"examples": [{"text": t, "label": y} for t, y in zip(texts, labels)]})
        job = _call(url, "POST", "/v1/personalize", {"epochs": args.epochs})
        report = _fire(url, texts, args)
        report["job"] = _wait_for_job(url, job["id"], args.time_limit_s)
    print(json.dumps(report, indent=2))
    return 1 if report["errors"] else 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--model", help="bundle or state folder: start `edgeft serve` on it, with a temporary state folder")
    target.add_argument("--url", help="a running service on loopback, e.g. http://127.0.0.1:8701")
    p.add_argument("--requests", type=int, default=400, help="predict requests in all (default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once (default: %(default)s)")
    p.add_argument("--batch", type=int, default=1, help="texts per predict request (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=200, help="epochs of the job that runs meanwhile (default: %(default)s)")
    p.add_argument("--examples", help="labelled examples (.csv/.jsonl) to post (default: BBC News, 12 per class)")
    p.add_argument("--time-limit-s", type=float, default=300, help="... and in time (default: %(default)s)")
    return p


def _examples(path: str | None) -> tuple[list[str], list[str]]:
    if path:
        from edgeft.data import read_examples

        return read_examples(path)
    from example_data import bbc_news, split_per_class

    ((texts, labels),) = split_per_class(*bbc_news(), [12], seed=0)
    return texts, labels


@contextlib.contextmanager
def _service(args: argparse.Namespace) -> Iterator[str]:
    if args.url:
        if urllib.parse.urlsplit(args.url).hostname not in LOOPBACK:
            raise SystemExit("--url must point at 127.0.0.1 (loopback only)")
        yield args.url.rstrip("/")
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="edgeft-load-") as state:
        command = [sys.executable, "-m", "edgeft", "serve", args.model, "--state", state, "--port", str(port)]
        repo = str(Path(__file__).resolve().parents[2])
        process = subprocess.Popen(
            command, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": repo}
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(url, process)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def _fire(url: str, texts: list[str], args: argparse.Namespace) -> dict:
    deadline = time.monotonic() + args.time_limit_s

    def one(i: int) -> tuple[float, str | None, int | None, bool]:
        if time.monotonic() > deadline:
            return 0.0, "skipped: time limit reached", None, False
        batch = [texts[(i + k) % len(texts)] for k in range(args.batch)]
        running = _call(url, "GET", "/healthz")["job_running"]
        started = time.perf_counter()
        try:
            answer = _call(url, "POST", "/v1/predict", {"texts": batch, "probabilities": False})
            return time.perf_counter() - started, None, answer["head_version"], running
        except (urllib.error.URLError, OSError, ValueError) as e:
            return time.perf_counter() - started, f"{type(e).__name__}: {e}", None, running

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
        results = list(pool.map(one, range(args.requests)))
    wall = time.perf_counter() - started
    latencies = sorted(r[0] * 1000 for r in results if r[1] is None)
    errors = [r[1] for r in results if r[1] is not None]
    return {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "texts_per_request": args.batch,
        "errors": len(errors),
        "first_errors": errors[:5],
        "during_job": sum(1 for r in results if r[3] and r[1] is None),
        "head_versions_seen": sorted({r[2] for r in results if r[2] is not None}),
        "latency_ms": {f"p{q}": round(_percentile(latencies, q), 1) for q in (50, 90, 95, 99)}
        | {"max": round(latencies[-1], 1) if latencies else None},
        "throughput_rps": round(len(latencies) / wall, 1),
        "wall_s": round(wall, 2),
    }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def _wait_for_job(url: str, job_id: str, limit_s: float) -> dict:
    deadline = time.monotonic() + limit_s
    while True:
        job = _call(url, "GET", f"/v1/jobs/{job_id}")
        if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return {k: job[k] for k in ("status", "done", "total", "error")} | {
                "train_seconds": (job["result"] or {}).get("train_seconds")
            }
        time.sleep(0.2)


def _wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError):
            _call(url, "GET", "/healthz")
            return
        time.sleep(0.2)
    raise SystemExit("the service did not start; run `edgeft serve` by hand to see why")


def _call(url: str, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


if __name__ == "__main__":
    sys.exit(main())
