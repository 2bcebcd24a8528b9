#!/usr/bin/env python3
"""How much does a model trained in full precision lose when ternarized after training?

A numpy forward pass of sentence-transformers/all-MiniLM-L6-v2 (BERT: 6 layers, hidden 384, 12 heads,
erf-GELU FFN, post-LayerNorm eps 1e-12, mean pooling over the attention mask, L2 normalisation) run on
the original F32 weights and on the weights `ternq quantize --dequantize` wrote (selected tensors
replaced by alpha*t in F32, same names), over a fixed set of paraphrase pairs and unrelated sentences.

Prints: a check of the forward pass against a published reference embedding, a check that the ternary
file holds what it claims (each selected tensor = alpha*{-1,0,1}, alpha = mean|W|; the rest unchanged),
and the quality figures: (a) cosine(original embedding, ternary embedding) per sentence, (b) top-1
paraphrase retrieval for both models, (c) Spearman correlation of all pairwise similarities.

This is a benchmark: it reports numbers, it does not pass or fail (exit 1 only on unusable input).

Usage: minilm.py --model-dir DIR --ternary model.ternary.safetensors [--json OUT.json]
(DIR holds model.safetensors, tokenizer.json, config.json; needs numpy, safetensors, tokenizers.)
"""
import argparse
import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

try:  # scipy is optional: math.erf vectorised is exact but slower.
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover
    _erf = np.vectorize(math.erf, otypes=[np.float64])

# 20 paraphrase pairs (2k, 2k+1) followed by 12 sentences unrelated to everything else.
PAIRS = [
    ("The cat is sleeping on the sofa.", "A cat naps on the couch."),
    ("How do I reset my password?", "What are the steps to change a forgotten password?"),
    ("The stock market fell sharply today.", "Share prices dropped steeply this afternoon."),
    ("She is learning to play the violin.", "She is taking violin lessons."),
    ("The train to Paris was delayed by two hours.", "Our train to Paris arrived two hours late."),
    ("Drink plenty of water when it is hot.", "Stay hydrated in hot weather."),
    ("He fixed the leaking kitchen tap.", "He repaired the dripping faucet in the kitchen."),
    ("The museum is closed on Mondays.", "On Mondays the museum does not open."),
    ("Our team won the football match.", "We beat the other side in the soccer game."),
    ("This laptop battery lasts ten hours.", "The notebook's battery runs for ten hours."),
    ("It is going to rain tomorrow.", "Tomorrow's forecast says there will be rain."),
    ("The children built a sandcastle on the beach.", "The kids made a castle out of sand at the seaside."),
    ("Please turn off the lights when you leave.", "Switch the lights off as you go out."),
    ("The restaurant serves excellent Italian food.", "That restaurant has great Italian cuisine."),
    ("My flight was cancelled because of the storm.", "The storm caused my flight to be called off."),
    ("He reads a newspaper every morning.", "Each morning he reads the paper."),
    ("The doctor prescribed antibiotics for the infection.", "The physician gave her antibiotics to treat the infection."),
    ("The new bridge will open next year.", "Next year the new bridge opens to traffic."),
    ("I lost my keys somewhere in the park.", "My keys went missing while I was in the park."),
    ("The company hired twenty new engineers.", "The firm took on twenty more engineers."),
]
UNRELATED = [
    "Photosynthesis converts sunlight into chemical energy.",
    "The violinist's bow needs new horsehair.",
    "Mount Everest is the highest mountain on Earth.",
    "Quantum computers use qubits instead of bits.",
    "The recipe calls for two cups of flour.",
    "Penguins cannot fly but they swim very well.",
    "The library has a large collection of rare maps.",
    "Jazz originated in New Orleans.",
    "Compile the program before running the tests.",
    "The painting was sold at auction for a record price.",
    "Volcanoes release gases such as sulfur dioxide.",
    "A triangle has three sides.",
]
SENTENCES = [s for pair in PAIRS for s in pair] + UNRELATED
N_PAIRED = 2 * len(PAIRS)

# Published reference: fastembed's test suite (tests/test_text_onnx_embeddings.py, CANONICAL_VECTOR_VALUES)
# checks the first 5 components of the mean-pooled, normalised all-MiniLM-L6-v2 embedding of
# "hello world" to atol 1e-3; the same values are what sentence-transformers prints for this model.
REFERENCE_TEXT = "hello world"
REFERENCE_FIRST5 = np.array([-0.034478, 0.03102, 0.00673, 0.02611, -0.039362])


class MiniLM:
    """BERT encoder + mean pooling in numpy, float32 activations, float64 LayerNorm statistics."""

    def __init__(self, weights, config):
        self.w = {k: v for k, v in weights.items()}
        self.layers = config["num_hidden_layers"]
        self.heads = config["num_attention_heads"]
        self.hidden = config["hidden_size"]
        self.eps = config["layer_norm_eps"]
        if config.get("hidden_act") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute positions and erf-GELU are implemented")

    def _ln(self, x, prefix):
        x64 = x.astype(np.float64)
        mu = x64.mean(-1, keepdims=True)
        var = ((x64 - mu) ** 2).mean(-1, keepdims=True)
        y = (x64 - mu) / np.sqrt(var + self.eps)
        return (y * self.w[prefix + ".weight"] + self.w[prefix + ".bias"]).astype(np.float32)

    def _lin(self, x, prefix):
        return x @ self.w[prefix + ".weight"].T + self.w[prefix + ".bias"]

    def encode(self, ids, mask):
        """ids, mask: (B, L) int arrays (mask 1 = real token). Returns (B, hidden) L2-normalised."""
        b, n = ids.shape
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n][None]
             + w["embeddings.token_type_embeddings.weight"][0][None, None])
        x = self._ln(x, "embeddings.LayerNorm")
        dh = self.hidden // self.heads
        # Additive key mask, as BERT does: padded keys get a large negative score.
        bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def split(t):
                return t.reshape(b, n, self.heads, dh).transpose(0, 2, 1, 3)

            q = split(self._lin(x, p + "attention.self.query"))
            k = split(self._lin(x, p + "attention.self.key"))
            v = split(self._lin(x, p + "attention.self.value"))
            s = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(dh)) + bias
            s = s - s.max(-1, keepdims=True)
            e = np.exp(s)
            a = e / e.sum(-1, keepdims=True)
            ctx = (a @ v).transpose(0, 2, 1, 3).reshape(b, n, self.hidden)
            x = self._ln(x + self._lin(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = self._lin(x, p + "intermediate.dense")
            h = (0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))).astype(np.float32)
            x = self._ln(x + self._lin(h, p + "output.dense"), p + "output.LayerNorm")
        m = mask[..., None].astype(np.float32)
        pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)


def tokenize(tok, texts, max_len=256):
    enc = tok.encode_batch(texts)
    n = min(max(len(e.ids) for e in enc), max_len)
    ids = np.zeros((len(texts), n), dtype=np.int64)
    mask = np.zeros((len(texts), n), dtype=np.int64)
    for r, e in enumerate(enc):
        t = e.ids[:n]
        ids[r, :len(t)] = t
        mask[r, :len(t)] = 1
    return ids, mask


def spearman(a, b):
    def ranks(x):
        order = np.argsort(x, kind="mergesort")
        r = np.empty(len(x), dtype=np.float64)
        r[order] = np.arange(len(x), dtype=np.float64)
        # average ranks of ties
        xs = x[order]
        i = 0
        while i < len(xs):
            j = i
            while j + 1 < len(xs) and xs[j + 1] == xs[i]:
                j += 1
            if j > i:
                r[order[i:j + 1]] = (i + j) / 2.0
            i = j + 1
        return r
    ra, rb = ranks(a), ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    return float((ra @ rb) / math.sqrt((ra @ ra) * (rb @ rb)))


def retrieval(emb):
    """Top-1 paraphrase retrieval over all sentences (query excluded) for the paired sentences."""
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    hits = [int(np.argmax(sim[i])) == (i ^ 1) for i in range(N_PAIRED)]
    return sum(hits), hits


def check_ternary_file(orig, tern):
    """Describes what the ternary file changed; raises on a tensor that is neither kept nor alpha*t."""
    changed, kept = [], []
    if set(orig) != set(tern):
        raise ValueError(f"tensor names differ: {sorted(set(orig) ^ set(tern))[:5]}")
    worst_alpha = 0.0
    for name in sorted(orig):
        o, t = orig[name], tern[name]
        if o.shape != t.shape or o.dtype != t.dtype:
            raise ValueError(f"{name}: shape/dtype changed")
        if np.array_equal(o, t):
            kept.append(name)
            continue
        vals = np.unique(t)
        alpha = float(np.abs(o.astype(np.float64)).mean())
        a = float(vals.max())
        if len(vals) > 3 or not np.all(np.isin(vals, [-a, 0.0, a])):
            raise ValueError(f"{name}: changed but not alpha*{{-1,0,1}} ({len(vals)} distinct values)")
        worst_alpha = max(worst_alpha, abs(a - alpha) / alpha)
        # threshold: t = sign(w) where |w| > alpha/2 (ties at exactly alpha/2 are measure-zero here)
        expect = np.where(o > 0.5 * a, a, np.where(o < -0.5 * a, -a, 0.0)).astype(np.float32)
        mism = int((expect != t).sum())
        rel = float(np.linalg.norm((t - o).astype(np.float64)) / np.linalg.norm(o.astype(np.float64)))
        changed.append({"name": name, "shape": list(o.shape), "alpha": a, "zeros": float((t == 0).mean()),
                        "rel_fro_error": rel, "trit_mismatch_vs_numpy": mism})
    return changed, kept, worst_alpha


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--ternary", required=True, help="output of ternq quantize --dequantize")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    with open(os.path.join(args.model_dir, "config.json")) as f:
        config = json.load(f)
    tok = Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    orig_w = load_file(os.path.join(args.model_dir, "model.safetensors"))
    tern_w = load_file(args.ternary)

    changed, kept, worst_alpha = check_ternary_file(orig_w, tern_w)
    n_params = sum(int(np.prod(orig_w[c["name"]].shape)) for c in changed)
    n_total = sum(int(np.prod(v.shape)) for v in orig_w.values())
    print(f"ternary file: {len(changed)} tensors ternarized ({n_params:,} of {n_total:,} parameters, "
          f"{100.0 * n_params / n_total:.1f}%), {len(kept)} kept bit-identical")
    if not changed:
        raise ValueError(f"{args.ternary}: no tensor differs from the original: not a ternarized file")
    import re
    kept_kinds = sorted({re.sub(r"layer\.\d+\.", "layer.N.", k) for k in kept if not k.endswith(".bias")})
    print(f"  kept: all {sum(k.endswith('.bias') for k in kept)} biases and {', '.join(kept_kinds)}")
    print(f"  ternarized: {', '.join(sorted({re.sub(r'layer[.][0-9]+[.]', 'layer.N.', c['name']) for c in changed}))}")
    print(f"  ternarized tensors: alpha within {worst_alpha:.2e} (relative) of mean|W|; "
          f"trits differing from a numpy absmean re-derivation: {sum(c['trit_mismatch_vs_numpy'] for c in changed)}")
    zeros = np.mean([c["zeros"] for c in changed])
    rel = np.mean([c["rel_fro_error"] for c in changed])
    print(f"  mean zero fraction {zeros:.3f}, mean relative weight error ||aT-W||/||W|| {rel:.3f}")

    m_orig, m_tern = MiniLM(orig_w, config), MiniLM(tern_w, config)

    ids, mask = tokenize(tok, [REFERENCE_TEXT])
    ref = m_orig.encode(ids, mask)[0]
    ref_err = float(np.abs(ref[:5] - REFERENCE_FIRST5).max())
    print(f"\nforward-pass check: '{REFERENCE_TEXT}' first 5 = {np.array2string(ref[:5], precision=6)}; "
          f"published {REFERENCE_FIRST5.tolist()}; max |diff| {ref_err:.1e}")

    ids, mask = tokenize(tok, SENTENCES)
    e_o, e_t = m_orig.encode(ids, mask), m_tern.encode(ids, mask)
    self_cos = (e_o * e_t).sum(-1)
    s_o, s_t = e_o @ e_o.T, e_t @ e_t.T
    iu = np.triu_indices(len(SENTENCES), 1)
    rho = spearman(s_o[iu], s_t[iu])
    pearson = float(np.corrcoef(s_o[iu], s_t[iu])[0, 1])
    hit_o, hits_o = retrieval(e_o)
    hit_t, hits_t = retrieval(e_t)
    pair_idx = np.arange(0, N_PAIRED, 2)
    para_o, para_t = s_o[pair_idx, pair_idx + 1], s_t[pair_idx, pair_idx + 1]
    unrel = np.ones_like(s_o, dtype=bool)
    np.fill_diagonal(unrel, False)
    for i in pair_idx:
        unrel[i, i + 1] = unrel[i + 1, i] = False
    unrel = np.triu(unrel, 1)

    print(f"\n{len(SENTENCES)} sentences: {len(PAIRS)} paraphrase pairs + {len(UNRELATED)} unrelated; "
          f"{len(iu[0])} sentence pairs")
    rows = [
        ("metric", "original F32", "ternarized"),
        ("top-1 paraphrase retrieval", f"{hit_o}/{N_PAIRED} ({100 * hit_o / N_PAIRED:.0f}%)",
         f"{hit_t}/{N_PAIRED} ({100 * hit_t / N_PAIRED:.0f}%)"),
        ("mean cos, paraphrase pairs", f"{para_o.mean():.3f}", f"{para_t.mean():.3f}"),
        ("mean cos, other pairs", f"{s_o[unrel].mean():.3f}", f"{s_t[unrel].mean():.3f}"),
        ("paraphrase - other gap", f"{para_o.mean() - s_o[unrel].mean():.3f}",
         f"{para_t.mean() - s_t[unrel].mean():.3f}"),
    ]
    wd = [max(len(r[c]) for r in rows) for c in range(3)]
    for j, r in enumerate(rows):
        print("  " + "  ".join(r[c].ljust(wd[c]) for c in range(3)))
        if j == 0:
            print("  " + "  ".join("-" * wd[c] for c in range(3)))
    print(f"\ncos(original embedding, ternarized embedding) per sentence: mean {self_cos.mean():.3f}, "
          f"min {self_cos.min():.3f}, max {self_cos.max():.3f}")
    print(f"Spearman correlation of the {len(iu[0])} pairwise similarities, original vs ternarized: "
          f"{rho:.3f} (Pearson {pearson:.3f})")
    lost = [SENTENCES[i] for i in range(N_PAIRED) if hits_o[i] and not hits_t[i]]
    if lost:
        print(f"retrieval lost by ternarization, e.g.: {lost[:3]}")
    print(f"\nsummary: ternarizing the {len(changed)} linear weights (encoder + unused pooler) of a model trained in full "
          f"precision, with no retraining, keeps embeddings at mean cosine {self_cos.mean():.2f} to the "
          f"originals; paraphrase top-1 retrieval goes from {hit_o}/{N_PAIRED} to {hit_t}/{N_PAIRED}; "
          f"similarity ranking Spearman {rho:.2f}.")

    if args.json:
        out = {
            "model": "sentence-transformers/all-MiniLM-L6-v2", "sentences": len(SENTENCES),
            "paraphrase_pairs": len(PAIRS), "ternarized_tensors": len(changed),
            "ternarized_parameters": n_params, "total_parameters": n_total,
            "reference_first5": ref[:5].tolist(), "reference_max_abs_diff": ref_err,
            "self_cosine_mean": float(self_cos.mean()), "self_cosine_min": float(self_cos.min()),
            "retrieval_top1_original": hit_o, "retrieval_top1_ternary": hit_t, "retrieval_queries": N_PAIRED,
            "paraphrase_cos_mean_original": float(para_o.mean()), "paraphrase_cos_mean_ternary": float(para_t.mean()),
            "other_cos_mean_original": float(s_o[unrel].mean()), "other_cos_mean_ternary": float(s_t[unrel].mean()),
            "spearman_pairwise": rho, "pearson_pairwise": pearson, "tensors": changed,
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, OSError) as err:
        print(f"minilm.py: error: {err}", file=sys.stderr)
        sys.exit(1)
