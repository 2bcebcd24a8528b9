#!/usr/bin/env python3
"""The same job as `ternq quantize IN -o OUT.safetensors` written the obvious way with numpy + safetensors:
absmean alpha (float64 accumulation), t = +1/-1 where fl32(w/alpha) > 0.5 / < -0.5, 2-bit packing along the
last dimension, F32 `.scale`, other tensors copied. Used as the baseline for throughput and peak RSS.

    numpy_quantize.py IN.safetensors OUT.safetensors
"""
import sys
import time

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file


def selected(name, shape):
    return len(shape) >= 2 and name.endswith("weight") and not any(s in name.lower() for s in ("embed", "norm", "lm_head"))


def main():
    src, dst = sys.argv[1], sys.argv[2]
    start = time.time()
    out = {}
    total = 0
    with safe_open(src, framework="numpy") as f:
        for name in f.keys():
            w = f.get_tensor(name)
            total += w.nbytes
            if not selected(name, w.shape):
                out[name] = w
                continue
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
