#!/usr/bin/env python3
"""Whole-job throughput of `ternq quantize` against `ternq bench` (warm page cache) and against the disk's
sequential read (cold page cache), per output format, with peak RSS. See measure.sh."""
import json
import os
import statistics
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
ternq = os.environ.get("TERNQ", os.path.join(root, ".build", "release", "ternq"))
work = sys.argv[1]
reps = int(os.environ.get("REPS", "3"))
st = os.path.join(work, "model.safetensors")
gg = os.path.join(work, "model.gguf")

# (label, input, extra ternq options, output extension)
JOBS = [("safetensors -> tern", st, ["--format", "tern"], "tern"),
        ("safetensors -> safetensors", st, ["--format", "safetensors"], "safetensors"),
        ("safetensors -> gguf tq2_0", st, ["--format", "gguf", "--gguf-type", "tq2_0"], "gguf"),
        ("safetensors -> gguf tq1_0", st, ["--format", "gguf", "--gguf-type", "tq1_0"], "gguf"),
        ("gguf -> gguf tq2_0", gg, ["--format", "gguf", "--gguf-type", "tq2_0"], "gguf")]


def cpu_ticks():
    """(all ticks, steal ticks) of the machine from /proc/stat's cpu line, or None where it is missing."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
        return sum(fields), fields[7]
    except (OSError, ValueError, IndexError):
        return None


def steal_since(before):
    """Share of the machine's processor time the hypervisor took since `before` (None if unknown)."""
    after = cpu_ticks()
    if before is None or after is None or after[0] <= before[0]:
        return None
    return (after[1] - before[1]) / (after[0] - before[0])


def run(cmd):
    """Runs cmd; returns (wall seconds, peak RSS in MB of that child, cpu steal share during it)."""
    ticks = cpu_ticks()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    if status != 0:
        sys.exit(f"failed ({status}): {' '.join(cmd)}")
    return dt, usage.ru_maxrss / 1024, steal_since(ticks)


def drop(*paths):
    subprocess.run([sys.executable, os.path.join(here, "fadvise.py"), "drop", *paths], check=True)


def disk_read(path):
    drop(path)
    out = subprocess.run([sys.executable, os.path.join(here, "fadvise.py"), "read", path], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)["gigabytes_per_second"]


def read_bytes(report):
    """Bytes of the tensors the job read (skipped tensors are not read)."""
    return sum(layer["input_bytes"] for layer in report["layers"])


def disk_write(nbytes):
    out = subprocess.run([sys.executable, os.path.join(here, "fadvise.py"), "write", os.path.join(work, "write-probe"), str(nbytes)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["gigabytes_per_second"]


def job(label, src, extra, ext, cold):
    out = os.path.join(work, "out." + ext)
    rep = os.path.join(work, "report.json")
    # A fresh output every run: replacing the previous run's output would add deleting a ~0.5 GB file
    # (0.2-0.3 s on this ext4 volume) to the job's time.
    for path in (out, rep):
        if os.path.exists(path):
            os.unlink(path)
    subprocess.run(["sync"], check=True)
    if cold:
        drop(src)
    else:
        subprocess.run(["cat", src], stdout=subprocess.DEVNULL, check=True)
    dt, rss, steal = run([ternq, "quantize", src, "-o", out, *extra, "--backend", "cpu", "--quiet", "--json", rep])
    with open(rep) as f:
        report = json.load(f)
    return {"wall_s": dt, "gbps": read_bytes(report) / dt / 1e9, "report_gbps": read_bytes(report) / report["totals"]["seconds"] / 1e9, "rss_mb": rss, "steal": steal,
            "read_gb": read_bytes(report) / 1e9, "out_bytes": report["totals"]["output_bytes"], "largest_mb": max(l["input_bytes"] for l in report["layers"]) / 1e6}


def median(rows, key):
    return statistics.median(r[key] for r in rows)


def pct(share):
    return "?" if share is None else f"{100 * share:.1f}%"


bench = []
for _ in range(reps):
    out = subprocess.run([ternq, "bench", "--backend", "cpu", "--dtype", "F32", "--json",
                          "--elements", os.environ.get("ELEMENTS", "65536000")], check=True, capture_output=True, text=True).stdout
    obj = json.loads(out.strip().splitlines()[-1])
    bench.append({"gbps": obj["input_gigabytes_per_second"] if "input_gigabytes_per_second" in obj else obj["gigabytes_per_second"],
                  "steal": obj.get("cpu_steal_fraction")})
bench_gbps = median(bench, "gbps")
print(f"ternq bench F32 cpu: {bench_gbps:.2f} GB/s (median of {reps}; runs "
      + ", ".join(f"{b['gbps']:.2f} (cpu steal {pct(b['steal'])})" for b in bench) + ")")
print()
print("GB/s = bytes of the tensors the job reads / wall seconds of the whole process (start to exit, fsync and")
print("rename included); 'loop' = the same bytes / the report's seconds (the job loop only). Each run writes a")
print("fresh output. 'disk write' = the job's output bytes written to a new file and fsynced (8 MiB writes);")
print("'bound' = read bytes / max(read bytes / bench, output bytes / disk write): the warm job can be no faster.")
print()
print("'no-fsync' = the same warm job with --no-fsync (published without waiting for the disk; the dirty")
print("pages are synced, untimed, before the next run).")
print()
print("'max cpu steal' = the largest share of the machine's processor time the hypervisor took during one of the")
print("row's runs (/proc/stat); above 5% the row understates the hardware.")
print()
print("| job | warm GB/s | / bench | warm loop GB/s | output MB | disk write GB/s | / bound | warm no-fsync GB/s | / bench | peak RSS MB | cold GB/s | disk read GB/s | / disk | cold no-fsync / disk | max cpu steal |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for label, src, extra, ext in JOBS:
    warm = [job(label, src, extra, ext, cold=False) for _ in range(reps)]
    fast = [job(label, src, extra + ["--no-fsync"], ext, cold=False) for _ in range(reps)]
    disk, cold, cold_fast = [], [], []
    for _ in range(reps):
        disk.append(disk_read(src))
        cold.append(job(label, src, extra, ext, cold=True))
        cold_fast.append(job(label, src, extra + ["--no-fsync"], ext, cold=True))
    out_bytes = warm[0]["out_bytes"]
    write = statistics.median(disk_write(out_bytes) for _ in range(reps))
    read = warm[0]["read_gb"] * 1e9
    bound = read / max(read / (bench_gbps * 1e9), out_bytes / (write * 1e9)) / 1e9
    w, c, d = median(warm, "gbps"), median(cold, "gbps"), statistics.median(disk)
    steals = [r["steal"] for r in warm + fast + cold + cold_fast if r["steal"] is not None]
    f = median(fast, "gbps")
    print(f"| {label} ({warm[0]['read_gb']:.2f} GB read, largest {warm[0]['largest_mb']:.0f} MB) | {w:.2f} | {w / bench_gbps:.2f} | {median(warm, 'report_gbps'):.2f} | "
          f"{out_bytes / 1e6:.0f} | {write:.2f} | {w / bound:.2f} | {f:.2f} | {f / bench_gbps:.2f} | "
          f"{max(r['rss_mb'] for r in warm + fast + cold):.0f} | {c:.2f} | {d:.2f} | {c / d:.2f} | {median(cold_fast, 'gbps') / d:.2f} | {pct(max(steals) if steals else None)} |", flush=True)
