#!/usr/bin/env python3
"""Independent interop check of ternq outputs with third-party readers (PyPI gguf, safetensors, numpy).

Usage: check_outputs.py --source model.safetensors --report-gguf r.json --gguf out.gguf [...]
       check_outputs.py --source SRC --gguf A.gguf --gguf-report A.json --safetensors B.safetensors --st-report B.json

For every quantized tensor:
  * GGUF (TQ1_0 / TQ2_0): gguf-py's dequantization must equal f16(alpha) * t for every element, where
    t is recomputed here from the *source* weights with the documented rule (alpha from the report's
    exact bits, t = +1 iff fl32(w/alpha) > 0.5, -1 iff < -0.5, else 0), and alpha must be the float32
    mean of |w| to within the float64 summation error.
  * safetensors: the safetensors package loads the file; the U8 tensor has shape [..., ceil(cols/4)],
    unpacks to the same t, and X.scale equals alpha exactly. Kept tensors are byte-identical to the source.
"""
import argparse
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


NUMPY_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32,
                "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32, "U64": np.uint64,
                "BOOL": np.bool_}


def raw_tensors(path):
    """name -> (dtype, shape, bytes), read with json + numpy only (numpy has no bfloat16)."""
    with open(path, "rb") as f:
        blob = f.read()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    data = blob[8 + n:]
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}


def load_source(path):
    """Source tensors as numpy arrays; BF16 is widened exactly to float32."""
    out = {}
    for k, (dtype, shape, raw) in raw_tensors(path).items():
        if dtype == "BF16":
            out[k] = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
        else:
            out[k] = np.frombuffer(raw, dtype=NUMPY_DTYPES[dtype]).reshape(shape)
    return out


def trits(w, alpha):
    w32 = w.astype(np.float32)
    q = (w32 / np.float32(alpha)).astype(np.float32)
    return np.where(q > 0.5, 1, np.where(q < -0.5, -1, 0)).astype(np.int8)


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check_alpha(name, w, alpha):
    mean = np.abs(w.astype(np.float64)).mean()
    if mean == 0:
        if alpha != 1.0:
            fail(f"{name}: all-zero tensor needs alpha 1.0, got {alpha}")
        return
    if abs(np.float64(alpha) - mean) > mean * 2.0**-23:
        fail(f"{name}: alpha {alpha!r} is not the float32 mean of |w| ({mean!r})")


def layers_by_name(report_path):
    with open(report_path) as f:
        report = json.load(f)
    return {l["name"]: l for l in report["layers"]}, report


def check_gguf(path, report_path, source):
    layers, report = layers_by_name(report_path)
    reader = GGUFReader(path)
    names = {t.name: t for t in reader.tensors}
    checked = 0
    for name, l in layers.items():
        if l["action"] == "skipped":
            if name in names:
                fail(f"{path}: skipped tensor {name} is present")
            continue
        t = names.get(name)
        if t is None:
            fail(f"{path}: tensor {name} missing")
        w = source[name]
        shape = tuple(l["shape"])
        deq = dequantize(t.data, t.tensor_type).reshape(shape)
        if l["action"] == "quantized":
            # TQ blocks need rows of 256 and a normal f16(alpha); otherwise the ternary network is stored
            # as F16 holding f16(alpha)*t (rows not a multiple of 256) or F32 holding alpha*t (f16(alpha)
            # zero, infinite or subnormal), and the layer's storage says which.
            storage = l.get("storage", report["gguf_type"])
            alpha = np.frombuffer(bytes.fromhex(l["scale_bits"])[::-1], dtype=np.float32)[0]
            h = np.float16(alpha)
            f16_ok = bool(np.isfinite(h)) and abs(float(h)) >= 2.0**-14
            if not f16_ok:
                want = "f32"
            elif shape and shape[-1] % 256 == 0:
                want = report["gguf_type"]
            else:
                want = "f16"
            if storage != want or t.tensor_type.name.lower() != want:
                fail(f"{path}: {name} (shape {shape}, alpha {alpha!r}) is {t.tensor_type.name}, report says "
                     f"{storage}; expected {want}")
            check_alpha(name, w, alpha)
            d = np.float32(h) if want != "f32" else np.float32(alpha)
            expected = (d * trits(w, alpha).astype(np.float32)).reshape(shape)
            if not np.array_equal(deq.astype(np.float32), expected):
                bad = np.argwhere(deq.astype(np.float32) != expected)[0]
                fail(f"{path}: {name}: dequantized value at {tuple(bad)} differs")
            checked += 1
        else:
            if not np.array_equal(deq.astype(np.float32), w.astype(np.float32)):
                fail(f"{path}: kept tensor {name} differs from the source")
    print(f"OK {path}: {checked} ternary tensors ({report['gguf_type']}) dequantize to f16(alpha)*t; {len(names)} tensors read")


def check_safetensors(path, report_path, source):
    layers, report = layers_by_name(report_path)
    from safetensors import safe_open
    raw = raw_tensors(path)
    out = {}
    with safe_open(path, framework="numpy") as f:  # the third-party reader must accept the file
        keys = list(f.keys())
        for k in keys:
            if raw[k][0] != "BF16":
                out[k] = f.get_tensor(k)
    checked = 0
    for name, l in layers.items():
        w = source[name]
        if l["action"] == "quantized":
            packed = out[name]
            shape = list(l["shape"]) or [1]
            cols = shape[-1]
            if packed.dtype != np.uint8 or list(packed.shape) != shape[:-1] + [(cols + 3) // 4]:
                fail(f"{path}: {name}: packed tensor has {packed.dtype} {packed.shape}")
            scale = out[name + ".scale"]
            if scale.dtype != np.float32 or scale.shape != ():
                fail(f"{path}: {name}.scale must be an F32 scalar")
            alpha = np.float32(scale)
            if alpha.tobytes()[::-1].hex() != l["scale_bits"]:
                fail(f"{path}: {name}.scale differs from the report")
            check_alpha(name, w, alpha)
            codes = np.stack([(packed >> (2 * j)) & 3 for j in range(4)], axis=-1).reshape(*packed.shape[:-1], -1)[..., :cols]
            if np.any(codes == 3):
                fail(f"{path}: {name}: reserved code 11")
            t = np.where(codes == 1, 1, np.where(codes == 2, -1, 0)).astype(np.int8).reshape(l["shape"])
            if not np.array_equal(t, trits(w, alpha)):
                fail(f"{path}: {name}: trits differ from the rule")
            checked += 1
        elif l["action"] == "kept":
            src = raw_tensors(report["input"])[name] if report["input"].endswith(".safetensors") else None
            if raw[name][0] != l["dtype"] or list(raw[name][1]) != l["shape"]:
                fail(f"{path}: kept tensor {name} changed dtype or shape")
            if src is not None and raw[name][2] != src[2]:
                fail(f"{path}: kept tensor {name} is not byte-identical")
    print(f"OK {path}: {checked} packed tensors with documented shapes; {len(keys)} tensors loaded")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--source", required=True)
    p.add_argument("--gguf", action="append", default=[])
    p.add_argument("--gguf-report", action="append", default=[])
    p.add_argument("--safetensors", action="append", default=[])
    p.add_argument("--st-report", action="append", default=[])
    a = p.parse_args()
    source = load_source(a.source)
    for g, r in zip(a.gguf, a.gguf_report):
        check_gguf(g, r, source)
    for s, r in zip(a.safetensors, a.st_report):
        check_safetensors(s, r, source)


if __name__ == "__main__":
    main()
