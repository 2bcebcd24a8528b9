#!/usr/bin/env python3
"""fadvise.py drop FILE...   : drop the files from the page cache (posix_fadvise DONTNEED, after fsync).
   fadvise.py read FILE      : read FILE sequentially in 8 MiB chunks; print bytes, seconds, GB/s (JSON).
   fadvise.py write FILE N   : write N bytes to a new FILE in 8 MiB chunks, write-back started after
                               each, and fsync it (what a job's output costs the disk at least); print
                               bytes, seconds, GB/s (JSON); FILE is removed.
   fadvise.py copy SRC N FILE: copy_file_range the first N bytes of SRC into a new FILE, no fsync (what
                               carrying N bytes of kept tensors into the output costs at least on a warm page
                               cache); print bytes, seconds, GB/s (JSON); FILE is removed (after a sync).
   fadvise.py readwrite SRC N FILE: read SRC sequentially while another thread writes N bytes to a new FILE
                               and fsyncs it (a cold job's disk traffic when input and output share the disk);
                               print the read bytes, seconds until both are done, read GB/s (JSON); FILE is
                               removed. Drop SRC from the page cache first."""
import json
import os
import sys
import threading
import time


def write_file(path, total):
    """Writes total bytes of random data to a new file in 8 MiB chunks and fsyncs it; returns the bytes.
    Each chunk's write-back is started as soon as it is written (posix_fadvise DONTNEED on it, as the job
    does for its output), so the disk writes while the rest is copied into the page cache: the disk's
    streaming write speed, not the page-cache copy followed by the flush."""
    buf = os.urandom(8 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    done = 0
    while done < total:
        k = os.write(fd, memoryview(buf)[:min(len(buf), total - done)])
        os.posix_fadvise(fd, done, k, os.POSIX_FADV_DONTNEED)
        done += k
    os.fsync(fd)
    os.close(fd)
    return done


def read_file(path):
    """Reads the file sequentially in 8 MiB chunks; returns the bytes read."""
    fd = os.open(path, os.O_RDONLY)
    view = memoryview(bytearray(8 << 20))
    total = 0
    while (k := os.readv(fd, [view])) > 0:
        total += k
    os.close(fd)
    return total


if sys.argv[1] == "drop":
    for path in sys.argv[2:]:
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
elif sys.argv[1] == "write":
    path, total = sys.argv[2], int(sys.argv[3])
    t0 = time.perf_counter()
    done = write_file(path, total)
    dt = time.perf_counter() - t0
    os.unlink(path)
    print(json.dumps({"bytes": done, "seconds": dt, "gigabytes_per_second": done / dt / 1e9}))
elif sys.argv[1] == "copy":
    src, total, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    fd = os.open(src, os.O_RDONLY)
    t0 = time.perf_counter()
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    done = 0
    while done < total:
        k = os.copy_file_range(fd, out, total - done, done, done)
        if k <= 0:
            sys.exit(f"copy_file_range stopped at byte {done} of {total} ({src} is shorter)")
        done += k
    os.close(out)
    dt = time.perf_counter() - t0
    os.close(fd)
    os.sync()
    os.unlink(path)
    print(json.dumps({"bytes": done, "seconds": dt, "gigabytes_per_second": done / dt / 1e9}))
elif sys.argv[1] == "readwrite":
    src, total, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    t0 = time.perf_counter()
    writer = threading.Thread(target=write_file, args=(path, total))
    writer.start()
    done = read_file(src)
    writer.join()
    dt = time.perf_counter() - t0
    os.unlink(path)
    print(json.dumps({"bytes": done, "seconds": dt, "gigabytes_per_second": done / dt / 1e9}))
else:
    path = sys.argv[2]
    t0 = time.perf_counter()
    total = read_file(path)
    dt = time.perf_counter() - t0
    print(json.dumps({"bytes": total, "seconds": dt, "gigabytes_per_second": total / dt / 1e9}))
