#!/usr/bin/env python3
"""fadvise.py drop FILE...   : drop the files from the page cache (posix_fadvise DONTNEED, after fsync).
   fadvise.py read FILE      : read FILE sequentially in 8 MiB chunks; print bytes, seconds, GB/s (JSON)."""
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
