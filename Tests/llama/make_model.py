#!/usr/bin/env python3
"""Writes a small llama-architecture GGUF that llama.cpp loads and runs: a real tokenizer (every
tokenizer.* KV copied from one of llama.cpp's models/ggml-vocab-*.gguf), seeded random weights and the
hyper-parameters llama.cpp's llama loader requires (llama-arch.cpp / llama-model.cpp: context_length,
embedding_length, block_count, feed_forward_length, attention.head_count[_kv],
attention.layer_norm_rms_epsilon; rope.dimension_count and vocab_size for completeness).

Kinds:
  f32      every tensor F32 (what `convert_hf_to_gguf.py --outtype f32` writes).
  ternary  like llama.cpp's BitNet export: the block weights are F16 holding +-a or 0 per tensor
           (a = mean|w| in float32, t = round(w / a) clamped to [-1, 1]); everything else F16 or F32.
  ternary-bf16  the same in BF16.

The output embedding is tied (no output.weight; llama.cpp then reuses token_embd), which keeps the file
small. Import `build_tensors` / `copy_vocab_kvs` from here or run it as a script:

  python3 Tests/llama/make_model.py --vocab models/ggml-vocab-llama-spm.gguf -o model.gguf
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

import gguf  # the gguf-py that matches the llama.cpp build (see run.sh)


def copy_vocab_kvs(writer: gguf.GGUFWriter, vocab_path: str) -> int:
    """Copies every tokenizer.* KV of a vocab-only GGUF into `writer`, same key, type and value."""
    reader = gguf.GGUFReader(vocab_path)
    copied = 0
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        main = field.types[0]
        if main == gguf.GGUFValueType.ARRAY:
            sub = field.types[1] if len(field.types) > 1 else None
            writer.add_key_value(key, field.contents(), main, sub_type=sub)
        else:
            writer.add_key_value(key, field.contents(), main)
        copied += 1
    if copied == 0:
        raise SystemExit(f"{vocab_path}: no tokenizer.* keys")
    return copied


def vocab_size(vocab_path: str) -> int:
    reader = gguf.GGUFReader(vocab_path)
    return len(reader.fields["tokenizer.ggml.tokens"].data)


def block_tensors(n_embd: int, n_ff: int, n_head: int, n_head_kv: int):
    """(name suffix, numpy shape) of one block's weights; numpy shape is [ne1, ne0] (outermost first)."""
    head_dim = n_embd // n_head
    return [
        ("attn_norm.weight", (n_embd,)),
        ("attn_q.weight", (n_embd, n_embd)),
        ("attn_k.weight", (n_head_kv * head_dim, n_embd)),
        ("attn_v.weight", (n_head_kv * head_dim, n_embd)),
        ("attn_output.weight", (n_embd, n_embd)),
        ("ffn_norm.weight", (n_embd,)),
        ("ffn_gate.weight", (n_ff, n_embd)),
        ("ffn_up.weight", (n_ff, n_embd)),
        ("ffn_down.weight", (n_embd, n_ff)),
    ]


def bitnet_ternarize(w: np.ndarray) -> np.ndarray:
    """llama.cpp's BitNet conversion (convert_hf_to_gguf.py BitnetModel.weight_quant): per-tensor
    scale = mean|w| (clamped to 1e-5), round(w / scale) clamped to [-1, 1], times scale."""
    w = w.astype(np.float32)
    scale = np.float32(max(np.abs(w).mean(dtype=np.float32), np.float32(1e-5)))
    return (np.clip(np.round(w * (np.float32(1) / scale)), -1, 1) * scale).astype(np.float32)


def write_model(out: str, vocab: str, *, kind: str = "f32", n_embd: int = 256, n_ff: int = 320,
                n_layer: int = 2, n_head: int = 4, n_head_kv: int = 2, n_ctx: int = 256, seed: int = 7,
                tiny_tensor: str | None = None, name: str = "ternq-test-llama") -> None:
    """Writes the model. `tiny_tensor` (a tensor name) is scaled by 1e-9 so that f16(alpha) underflows."""
    if kind not in ("f32", "ternary", "ternary-bf16"):
        raise SystemExit(f"unknown kind {kind}")
    n_vocab = vocab_size(vocab)
    rng = np.random.Generator(np.random.PCG64(seed))
    w = gguf.GGUFWriter(out, "llama")
    w.add_name(name)
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(n_vocab)
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "ternary": gguf.LlamaFileType.MOSTLY_F16,
             "ternary-bf16": gguf.LlamaFileType.MOSTLY_BF16}[kind]
    w.add_file_type(int(ftype))
    copy_vocab_kvs(w, vocab)

    def store(tname: str, arr: np.ndarray, selected: bool) -> None:
        arr = arr.astype(np.float32)
        if kind == "f32" or arr.ndim == 1:
            w.add_tensor(tname, arr)
        elif kind == "ternary" or not selected:
            w.add_tensor(tname, arr.astype(np.float16))
        else:
            bf = gguf.quants.quantize(arr, gguf.GGMLQuantizationType.BF16)
            w.add_tensor(tname, bf, raw_shape=bf.shape, raw_dtype=gguf.GGMLQuantizationType.BF16)

    def normal(shape, std):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)

    store("token_embd.weight", normal((n_vocab, n_embd), 0.1), False)
    for i in range(n_layer):
        for suffix, shape in block_tensors(n_embd, n_ff, n_head, n_head_kv):
            tname = f"blk.{i}.{suffix}"
            if len(shape) == 1:
                arr = (np.float32(1) + normal(shape, 0.05)).astype(np.float32)
                store(tname, arr, False)
                continue
            arr = normal(shape, 1.0 / np.sqrt(shape[1]))
            if tname == tiny_tensor:
                arr = (arr * np.float32(1e-9)).astype(np.float32)
            if kind != "f32":
                arr = bitnet_ternarize(arr)
            store(tname, arr, True)
    store("output_norm.weight", (np.float32(1) + normal((n_embd,), 0.05)).astype(np.float32), False)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocab", required=True, help="a vocab-only GGUF, e.g. models/ggml-vocab-llama-spm.gguf")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--kind", default="f32", choices=["f32", "ternary", "ternary-bf16"])
    p.add_argument("--n-embd", type=int, default=256)
    p.add_argument("--n-ff", type=int, default=320)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--ctx", type=int, default=256)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--tiny-tensor", default=None, help="scale this tensor by 1e-9 (f16(alpha) underflows)")
    a = p.parse_args()
    write_model(a.out, a.vocab, kind=a.kind, n_embd=a.n_embd, n_ff=a.n_ff, n_layer=a.layers,
                n_head=a.heads, n_head_kv=a.kv_heads, n_ctx=a.ctx, seed=a.seed, tiny_tensor=a.tiny_tensor)
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
