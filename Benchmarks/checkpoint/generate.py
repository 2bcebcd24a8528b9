#!/usr/bin/env python3
"""Generate a llama-shaped safetensors checkpoint of normally distributed weights, streaming tensor by
tensor (memory stays at one tensor), for ternq memory/throughput measurements.

    generate.py OUT.safetensors [--layers 5] [--hidden 2048] [--intermediate 5632] [--vocab 32000]
                [--dtype F32|BF16] [--seed 0] [--ternary]

--ternary writes every linear weight (names with 'proj') as an already-ternary tensor, as a BitNet b1.58
export holds it: each value 0 or ±a with one magnitude a per tensor (about a third zeros).

Defaults give ~1.55 GB of F32 (5 layers of a 1B-class model plus embeddings and head).
Writes config.json next to the file.
"""
import argparse
import json
import os
import struct

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--intermediate", type=int, default=5632)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--dtype", choices=["F32", "BF16"], default="F32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ternary", action="store_true", help="linear weights already ternary: 0 or ±a per tensor")
    a = p.parse_args()
    h, m = a.hidden, a.intermediate
    shapes = [("model.embed_tokens.weight", [a.vocab, h])]
    for i in range(a.layers):
        q = f"model.layers.{i}."
        shapes += [(q + "input_layernorm.weight", [h]),
                   (q + "self_attn.q_proj.weight", [h, h]), (q + "self_attn.k_proj.weight", [h, h]),
                   (q + "self_attn.v_proj.weight", [h, h]), (q + "self_attn.o_proj.weight", [h, h]),
                   (q + "post_attention_layernorm.weight", [h]),
                   (q + "mlp.gate_proj.weight", [m, h]), (q + "mlp.up_proj.weight", [m, h]),
                   (q + "mlp.down_proj.weight", [h, m])]
    shapes += [("model.norm.weight", [h]), ("lm_head.weight", [a.vocab, h])]
    width = 4 if a.dtype == "F32" else 2
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in shapes:
        size = int(np.prod(shape)) * width
        header[name] = {"dtype": a.dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    rng = np.random.default_rng(a.seed)
    with open(a.out, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name, shape in shapes:
            n = int(np.prod(shape))
            chunk = 1 << 24
            for start in range(0, n, chunk):
                k = min(chunk, n - start)
                w = rng.standard_normal(k, dtype=np.float32) * np.float32(0.02)
                if "norm" in name:
                    w += np.float32(1)
                elif a.ternary and "proj" in name:
                    # 0 where |w| <= 0.43 sigma (about a third), else sign(w) times the tensor's magnitude.
                    magnitude = np.float32(0.015625 * (1 + len(name) % 4))
                    w = np.where(np.abs(w) > np.float32(0.0086), np.sign(w) * magnitude, np.float32(0)).astype(np.float32)
                if a.dtype == "BF16":
                    bits = w.view(np.uint32)
                    w = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")  # round to nearest even
                f.write(w.tobytes())
    config = {"model_type": "llama", "vocab_size": a.vocab, "hidden_size": h, "num_hidden_layers": a.layers,
              "intermediate_size": m}
    with open(os.path.join(os.path.dirname(os.path.abspath(a.out)), "config.json"), "w") as f:
        json.dump(config, f)
    print(f"wrote {a.out}: {8 + len(text) + offset} bytes, {len(shapes)} tensors, {a.dtype}")


if __name__ == "__main__":
    main()
