#!/usr/bin/env python3
"""fadvise.py drop FILE...   : drop the files from the page cache (posix_fadvise DONTNEED, after fsync).
   fadvise.py read FILE      : read FILE sequentially in 8 MiB chunks; print bytes, seconds, GB/s (JSON).
   fadvise.py write FILE N   : write N bytes to a new FILE in 8 MiB chunks and fsync it (what a job's output
                               costs the disk at least); print bytes, seconds, GB/s (JSON); FILE is removed."""
import json
import os
import sys
import time

if sys.argv[1] == "drop":
    for path in sys.argv[2:]:
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
elif sys.argv[1] == "write":
    path, total = sys.argv[2], int(sys.argv[3])
    buf = os.urandom(8 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    done, t0 = 0, time.perf_counter()
    while done < total:
        done += os.write(fd, memoryview(buf)[:min(len(buf), total - done)])
    os.fsync(fd)
    dt = time.perf_counter() - t0
    os.close(fd)
    os.unlink(path)
    print(json.dumps({"bytes": done, "seconds": dt, "gigabytes_per_second": done / dt / 1e9}))
else:
    fd = os.open(sys.argv[2], os.O_RDONLY)
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    total, t0 = 0, time.perf_counter()
    while (k := os.readv(fd, [view])) > 0:
        total += k
    dt = time.perf_counter() - t0
    os.close(fd)
    print(json.dumps({"bytes": total, "seconds": dt, "gigabytes_per_second": total / dt / 1e9}))
