#!/usr/bin/env python3
"""Convert a generate.py safetensors checkpoint (F32/BF16 llama names) into a GGUF file with llama.cpp
tensor names, streaming one tensor at a time (memory stays at one tensor).

    to_gguf.py IN.safetensors OUT.gguf

Writes a minimal GGUF v3 header by hand (general.architecture = llama, block_count, embedding_length),
alignment 32, F32 (type 0) or BF16 (type 30) tensors, dimensions in GGUF order (fastest first).
"""
import json
import re
import struct
import sys

NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
         "lm_head.weight": "output.weight"}
LAYER = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
         "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
         "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
         "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
         "mlp.down_proj.weight": "ffn_down.weight"}


def gguf_name(name):
    if name in NAMES:
        return NAMES[name]
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", name)
    return f"blk.{m.group(1)}.{LAYER[m.group(2)]}"


def s(text):
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def main():
    src, out = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    base = 8 + n
    tensors = [(k, v) for k, v in header.items() if k != "__metadata__"]
    tensors.sort(key=lambda kv: kv[1]["data_offsets"][0])
    layers = 1 + max(int(m.group(1)) for k, _ in tensors if (m := re.match(r"model\.layers\.(\d+)\.", k)))
    hidden = header["model.norm.weight"]["shape"][0]
    kv = [s("general.architecture") + struct.pack("<I", 8) + s("llama"),
          s("llama.block_count") + struct.pack("<II", 4, layers),
          s("llama.embedding_length") + struct.pack("<II", 4, hidden),
          s("general.alignment") + struct.pack("<II", 4, 32)]
    infos, offset = [], 0
    for name, t in tensors:
        size = t["data_offsets"][1] - t["data_offsets"][0]
        dims = list(reversed(t["shape"]))
        gtype = {"F32": 0, "BF16": 30}[t["dtype"]]
        infos.append(s(gguf_name(name)) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
                     + struct.pack("<IQ", gtype, offset))
        offset += (size + 31) // 32 * 32
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)) + b"".join(kv) + b"".join(infos)
    head += b"\0" * ((32 - len(head) % 32) % 32)
    with open(src, "rb") as f, open(out, "wb") as o:
        o.write(head)
        for name, t in tensors:
            a, b = t["data_offsets"]
            f.seek(base + a)
            left = b - a
            while left:
                chunk = f.read(min(left, 1 << 24))
                o.write(chunk)
                left -= len(chunk)
            o.write(b"\0" * ((32 - (b - a) % 32) % 32))


if __name__ == "__main__":
    main()
