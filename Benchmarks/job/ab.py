#!/usr/bin/env python3
"""Interleaved A/B of two `ternq` binaries on the measure.sh checkpoint, warm page cache, fresh output per run.
Usage: ab.py A_BINARY B_BINARY [cachedir (default ~/.cache/ternq/job-bench)] [runs (default 3)]
Prints per job the wall GB/s / loop GB/s / CPU seconds / peak RSS MB of each run, alternating A and B, with the load."""
import json
import os
import subprocess
import sys
import time

a, b = sys.argv[1], sys.argv[2]
work = sys.argv[3] if len(sys.argv) > 3 else os.path.expanduser("~/.cache/ternq/job-bench")
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
st, gg = os.path.join(work, "model.safetensors"), os.path.join(work, "model.gguf")
JOBS = [("st -> tern", st, ["--format", "tern"], "tern"),
        ("st -> safetensors", st, ["--format", "safetensors"], "safetensors"),
        ("st -> gguf tq2_0", st, ["--format", "gguf"], "gguf"),
        ("st -> gguf tq1_0", st, ["--format", "gguf", "--gguf-type", "tq1_0"], "gguf"),
        ("gguf -> gguf", gg, ["--format", "gguf"], "gguf")]
only = os.environ.get("JOBS")


def once(binary, src, extra, ext):
    out, rep = os.path.join(work, "ab-out." + ext), os.path.join(work, "ab-report.json")
    for path in (out, rep):
        if os.path.exists(path):
            os.unlink(path)
    subprocess.run(["sync"], check=True)
    subprocess.run(["cat", src], stdout=subprocess.DEVNULL, check=True)
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "quantize", src, "-o", out, *extra, "--backend", "cpu", "--quiet", "--json", rep])
    _, status, usage = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    if status != 0:
        sys.exit(f"{binary} failed ({status})")
    with open(rep) as f:
        report = json.load(f)
    read = sum(layer["input_bytes"] for layer in report["layers"])
    cpu = usage.ru_utime + usage.ru_stime
    return f"{read / dt / 1e9:.2f}/{read / report['totals']['seconds'] / 1e9:.2f}/{cpu:.2f}/{usage.ru_maxrss / 1024:.0f}"


print(f"load {os.getloadavg()[0]:.1f}; wall GB/s / loop GB/s / CPU seconds (user + system) / peak RSS MB")
print("| job | A | B |")
print("|---|---|---|")
for label, src, extra, ext in JOBS:
    if only and label not in only.split(","):
        continue
    ra, rb = [], []
    for _ in range(runs):
        ra.append(once(a, src, extra, ext))
        rb.append(once(b, src, extra, ext))
    print(f"| {label} | {' '.join(ra)} | {' '.join(rb)} |", flush=True)
print(f"load {os.getloadavg()[0]:.1f}")
