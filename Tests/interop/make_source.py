#!/usr/bin/env python3
"""Writes a random F32/F16 checkpoint with the safetensors package (a third-party writer) for interop."""
import sys

import numpy as np
from safetensors.numpy import save_file

rng = np.random.default_rng(20261129)
tensors = {
    "model.embed_tokens.weight": rng.normal(0, 0.02, (64, 512)).astype(np.float16),
    "model.layers.0.self_attn.q_proj.weight": rng.normal(0, 0.02, (512, 512)).astype(np.float32),
    "model.layers.0.mlp.up_proj.weight": rng.normal(0, 0.05, (768, 512)).astype(np.float16),
    "model.layers.0.mlp.down_proj.weight": rng.standard_t(3, (512, 768)).astype(np.float32),
    "model.layers.0.odd_proj.weight": rng.normal(0, 1, (33, 100)).astype(np.float32),
    "model.layers.0.input_layernorm.weight": np.ones(512, np.float32),
    "model.position_ids": np.arange(16, dtype=np.int64).reshape(1, 16),
}
save_file(tensors, sys.argv[1])
