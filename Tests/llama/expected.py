"""The values `ternq quantize` must write, computed independently of ternq (exact integer arithmetic and
numpy's IEEE float32 division), and the selection rule it must apply to llama.cpp tensor names.

  alpha = the float32 nearest the exact mean of |w| (ties to even); 1.0 when every element is zero
  t     = +1 if fl32(w / alpha) > 0.5, -1 if < -0.5, else 0 (correctly rounded float32 division)
  f16(alpha) normal            -> TQ2_0/TQ1_0 with d = f16(alpha) when ne0 % 256 == 0, else F16 = f16(alpha)*t
  f16(alpha) 0, inf, subnormal -> F32 = alpha*t
"""
from __future__ import annotations

import re
from fractions import Fraction

import numpy as np

import gguf

QK_K = 256
NORM_RE = re.compile(r"norm")
BLOCK_WEIGHT_RE = re.compile(r"blk\.\d+\.(?P<part>.+)\.weight")


def selected(name: str, ne: list[int]) -> bool:
    """The default selection (issue 7, item 3): every blk.N.*.weight of rank >= 2 except norms."""
    m = BLOCK_WEIGHT_RE.fullmatch(name)
    return bool(m) and len(ne) >= 2 and not NORM_RE.search(m.group("part"))


def exact_abs_sum(w: np.ndarray) -> int:
    """Sum of |w| over float32 elements, exactly, as an integer number of 2^-149 units."""
    bits = np.abs(np.ascontiguousarray(w, dtype=np.float32)).reshape(-1).view(np.uint32)
    exp = (bits >> np.uint32(23)).astype(np.int64)
    man = (bits & np.uint32(0x7FFFFF)).astype(np.int64)
    man = np.where(exp > 0, man | 0x800000, man)
    e = np.maximum(exp, 1)  # value = man * 2^(e - 150) = (man << (e - 1)) * 2^-149
    total = 0
    for ev in np.unique(e):
        total += int(man[e == ev].sum()) << int(ev - 1)
    return total


def nearest_f32(q: Fraction) -> np.float32:
    """The float32 nearest the non-negative rational q, ties to even mantissa."""
    f = np.float32(float(q))  # float(Fraction) is correctly rounded to double: within one float32 step
    cands = {float(f)}
    with np.errstate(over="ignore"):
        for direction in (-np.inf, np.inf):
            c = np.nextafter(f, np.float32(direction))
            if np.isfinite(c) and c >= 0:
                cands.add(float(c))
    best = None
    for c in sorted(cands):
        d = abs(Fraction(c) - q)
        if best is None or d < best[0] or (d == best[0] and
                                           int(np.float32(c).view(np.uint32)) % 2 == 0):
            best = (d, c)
    return np.float32(best[1])


def exact_alpha(w: np.ndarray) -> np.float32:
    total = exact_abs_sum(w)
    if total == 0:
        return np.float32(1.0)
    return nearest_f32(Fraction(total, w.size << 149))


def trits(w: np.ndarray, alpha: np.float32) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.ascontiguousarray(w, dtype=np.float32) / np.float32(alpha)
    return ((q > np.float32(0.5)).astype(np.int8) - (q < np.float32(-0.5)).astype(np.int8))


def f16_usable(alpha: np.float32) -> bool:
    h = np.float16(alpha)
    return bool(np.isfinite(h)) and abs(float(h)) >= 2.0 ** -14


def tensor_f32(t) -> np.ndarray:
    """A gguf-py ReaderTensor as float32 values (flat), any type gguf-py can dequantize."""
    tt = t.tensor_type
    if tt == gguf.GGMLQuantizationType.F32:
        return np.asarray(t.data, dtype=np.float32).reshape(-1)
    if tt == gguf.GGMLQuantizationType.F16:
        return np.asarray(t.data).view(np.float16).astype(np.float32).reshape(-1)
    return gguf.quants.dequantize(np.asarray(t.data), tt).astype(np.float32).reshape(-1)


def block_scales(t) -> np.ndarray:
    """The f16 d field of every TQ1_0/TQ2_0 block, as uint16 bits."""
    raw = np.asarray(t.data).view(np.uint8).reshape(-1)
    size = {gguf.GGMLQuantizationType.TQ2_0: 66, gguf.GGMLQuantizationType.TQ1_0: 54}[t.tensor_type]
    blocks = raw.reshape(-1, size)
    return blocks[:, size - 2:].copy().view(np.uint16).reshape(-1)


def expected_stored(w: np.ndarray, ne0: int, tq: gguf.GGMLQuantizationType):
    """(expected ggml type, expected float32 values, f16 bits of d or None) for a selected tensor."""
    alpha = exact_alpha(w)
    t = trits(w, alpha)
    if not f16_usable(alpha):
        vals = (t.astype(np.float32) * alpha).astype(np.float32)
        vals[t == 0] = 0.0
        return gguf.GGMLQuantizationType.F32, vals, None
    d = np.float16(alpha)
    vals = (t.astype(np.float32) * np.float32(d)).astype(np.float32)
    vals[t == 0] = 0.0
    if ne0 % QK_K == 0:
        return tq, vals, int(np.array(d).view(np.uint16))
    return gguf.GGMLQuantizationType.F16, vals, None


def ternary_magnitude(w: np.ndarray):
    """a when every non-zero element of w has magnitude a (already ternary), else None."""
    mags = np.unique(np.abs(w[w != 0]))
    return mags[0] if mags.size == 1 else None


def field_bytes(field) -> bytes:
    """A KV's exact encoding in the file (key, type, value)."""
    return b"".join(bytes(np.asarray(p).tobytes()) for p in field.parts)


def user_fields(reader) -> dict:
    return {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}
