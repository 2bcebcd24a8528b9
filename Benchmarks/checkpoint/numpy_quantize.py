#!/usr/bin/env python3
"""The same job as `ternq quantize IN -o OUT.safetensors` written the obvious way with numpy + safetensors:
absmean alpha (float64 accumulation), t = +1/-1 where fl32(w/alpha) > 0.5 / < -0.5, 2-bit packing along the
last dimension, F32 `.scale`, other tensors copied. Used as the baseline for throughput and peak RSS.
numpy has no bfloat16: BF16 tensors are read as uint16 and widened exactly (kept BF16 tensors are written
as U16 bit patterns, a limitation of this baseline only).

    numpy_quantize.py IN.safetensors OUT.safetensors
"""
import json
import struct
import sys
import time

import numpy as np
from safetensors.numpy import save_file

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64, "I32": np.int32, "U8": np.uint8,
          "I8": np.int8, "F64": np.float64, "BOOL": np.bool_, "U16": np.uint16, "I16": np.int16}


def tensors(path):
    """(name, dtype, array) for every tensor, memory-mapped (numpy has no BF16: returned as uint16)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    for name, v in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = v["data_offsets"]
        yield name, v["dtype"], data[b:e].view(DTYPES[v["dtype"]]).reshape(v["shape"])


def selected(name, shape):
    return len(shape) >= 2 and name.endswith("weight") and not any(s in name.lower() for s in ("embed", "norm", "lm_head"))


def main():
    src, dst = sys.argv[1], sys.argv[2]
    start = time.time()
    out = {}
    total = 0
    if True:
        for name, dtype, w in tensors(src):
            total += w.nbytes
            if dtype not in ("F32", "F16", "BF16") or not selected(name, w.shape):
                out[name] = np.array(w)
                continue
            if dtype == "BF16":
                w = (w.astype(np.uint32) << 16).view(np.float32)
            w = w.astype(np.float32, copy=False)
            alpha = np.float32(np.abs(w, dtype=np.float64).mean()) if w.size else np.float32(1)
            if alpha == 0:
                alpha = np.float32(1)
            q = w / alpha
            codes = np.where(q > 0.5, 1, np.where(q < -0.5, 2, 0)).astype(np.uint8)
            cols = w.shape[-1]
            pad = (-cols) % 4
            if pad:
                codes = np.concatenate([codes, np.zeros(codes.shape[:-1] + (pad,), np.uint8)], axis=-1)
            c = codes.reshape(codes.shape[:-1] + (-1, 4))
            out[name] = (c[..., 0] | (c[..., 1] << 2) | (c[..., 2] << 4) | (c[..., 3] << 6)).astype(np.uint8)
            out[name + ".scale"] = np.array(alpha, dtype=np.float32)
    save_file(out, dst)
    seconds = time.time() - start
    print(f"numpy: {total / 1e9:.3f} GB in {seconds:.2f} s = {total / seconds / 1e9:.3f} GB/s")


if __name__ == "__main__":
    main()
