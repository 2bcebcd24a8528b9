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


def probe(*args):
    """Runs one fadvise.py probe; returns its JSON object."""
    out = subprocess.run([sys.executable, os.path.join(here, "fadvise.py"), *args], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def kept_bytes(report):
    """Bytes of the tensors the job carries into the output unchanged."""
    return sum(layer["input_bytes"] for layer in report["layers"] if layer["action"] == "kept")


def quantized_bytes(report):
    return sum(layer["input_bytes"] for layer in report["layers"] if layer["action"] == "quantized")


def disk_write(nbytes):
    return probe("write", os.path.join(work, "write-probe"), str(nbytes))["gigabytes_per_second"]


def kept_copy_seconds(src, nbytes):
    """Seconds to copy_file_range nbytes of src into a new file (warm, no fsync): the least that carrying
    the kept tensors into the output costs."""
    return probe("copy", src, str(nbytes), os.path.join(work, "copy-probe"))["seconds"] if nbytes else 0.0


def shared_disk_read(src, nbytes):
    """GB/s of reading src cold while nbytes are written and fsynced to the same disk."""
    drop(src)
    return probe("readwrite", src, str(nbytes), os.path.join(work, "readwrite-probe"))["gigabytes_per_second"]


def start_up_seconds(extra, ext):
    """Wall seconds of the same job on a tiny checkpoint (1 layer, hidden 64): process start, argument
    parsing, opening and publishing the output, fsync: the fixed cost every job pays."""
    tiny = os.path.join(work, "tiny.safetensors")
    if not os.path.exists(tiny):
        subprocess.run([sys.executable, os.path.join(root, "Benchmarks", "checkpoint", "generate.py"), tiny, "--layers", "1",
                        "--hidden", "64", "--intermediate", "128", "--vocab", "256"], check=True, stdout=subprocess.DEVNULL)
    out = os.path.join(work, "tiny-out." + ext)
    times = []
    for _ in range(5):
        if os.path.exists(out):
            os.unlink(out)
        times.append(run([ternq, "quantize", tiny, "-o", out, *extra, "--backend", "cpu", "--quiet"])[0])
    os.unlink(out)
    return statistics.median(times)


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
            "read_gb": read_bytes(report) / 1e9, "kept_bytes": kept_bytes(report), "quantized_bytes": quantized_bytes(report), "out_bytes": report["totals"]["output_bytes"], "largest_mb": max(l["input_bytes"] for l in report["layers"]) / 1e6}


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
print("fresh output. 'no-fsync' = the same warm job with --no-fsync (published without waiting for the disk; the")
print("dirty pages are synced, untimed, before the next run).")
print()
print("Floors, each measured in this run: 'start-up' = the same job on a tiny checkpoint (process start, parsing,")
print("publishing, fsync); 'copy' = copy_file_range of the kept tensors' bytes into a new file, warm, no fsync;")
print("'disk write' = the output's bytes written to a new file and fsynced. 'best' = read bytes / (start-up +")
print("max(quantized bytes / bench, copy, output / disk write)): what a job that did nothing but these, each at")
print("the speed measured here, would reach (without the disk write for 'best no-fsync'); '/ bench' columns")
print("are the issue's measure, job GB/s / bench GB/s.")
print()
print("'max cpu steal' = the largest share of the machine's processor time the hypervisor took during one of the")
print("row's runs (/proc/stat); above 5% the row understates the hardware.")
print()
warm_rows, cold_rows = [], []
for label, src, extra, ext in JOBS:
    warm = [job(label, src, extra, ext, cold=False) for _ in range(reps)]
    fast = [job(label, src, extra + ["--no-fsync"], ext, cold=False) for _ in range(reps)]
    disk, shared, cold, cold_fast = [], [], [], []
    out_bytes = warm[0]["out_bytes"]
    for _ in range(reps):
        disk.append(disk_read(src))
        shared.append(shared_disk_read(src, out_bytes))
        cold.append(job(label, src, extra, ext, cold=True))
        cold_fast.append(job(label, src, extra + ["--no-fsync"], ext, cold=True))
    write = statistics.median(disk_write(out_bytes) for _ in range(reps))
    copy_s = statistics.median(kept_copy_seconds(src, warm[0]["kept_bytes"]) for _ in range(reps))
    start_s = start_up_seconds(extra, ext)
    read = warm[0]["read_gb"] * 1e9
    compute_s = warm[0]["quantized_bytes"] / (bench_gbps * 1e9)
    best = read / (start_s + max(compute_s, copy_s, out_bytes / (write * 1e9))) / 1e9
    best_fast = read / (start_s + max(compute_s, copy_s)) / 1e9
    w, f, c, d, sh = median(warm, "gbps"), median(fast, "gbps"), median(cold, "gbps"), statistics.median(disk), statistics.median(shared)
    steals = [r["steal"] for r in warm + fast + cold + cold_fast if r["steal"] is not None]
    name = f"{label} ({warm[0]['read_gb']:.2f} GB read, {warm[0]['kept_bytes'] / 1e6:.0f} MB kept, largest {warm[0]['largest_mb']:.0f} MB)"
    warm_rows.append(f"| {name} | {w:.2f} | {w / bench_gbps:.2f} | {median(warm, 'report_gbps'):.2f} | {f:.2f} | {f / bench_gbps:.2f} | "
                     f"{1000 * start_s:.0f} | {copy_s:.3f} | {out_bytes / 1e6:.0f} | {write:.2f} | {best:.2f} | {best / bench_gbps:.2f} | "
                     f"{best_fast:.2f} | {best_fast / bench_gbps:.2f} | {max(r['rss_mb'] for r in warm + fast + cold):.0f} | {pct(max(steals) if steals else None)} |")
    cold_rows.append(f"| {name} | {c:.2f} | {d:.2f} | {c / d:.2f} | {median(cold_fast, 'gbps') / d:.2f} | {sh:.2f} | {sh / d:.2f} | {c / sh:.2f} |")
    print(f"measured: {label}", file=sys.stderr, flush=True)

print("Warm page cache:")
print()
print("| job | GB/s | / bench | loop GB/s | no-fsync GB/s | / bench | start-up ms | copy s | output MB | disk write GB/s | best GB/s | / bench | best no-fsync GB/s | / bench | peak RSS MB | max cpu steal |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
print("\n".join(warm_rows))
print()
print("Cold page cache ('disk read' = the input read sequentially alone; 'shared disk' = the same read while the")
print("job's output bytes are written and fsynced to the same disk, a cold job's disk traffic):")
print()
print("| job | GB/s | disk read GB/s | / disk read | no-fsync / disk read | shared disk GB/s | shared / disk read | job / shared disk |")
print("|---|---|---|---|---|---|---|---|")
print("\n".join(cold_rows))
