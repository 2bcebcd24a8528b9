#!/usr/bin/env python3
"""llama.cpp runs what ternq writes (issue 7, "CI tests"). Driven by Tests/llama/run.sh, which builds
llama.cpp and ternq and provides a Python with numpy and llama.cpp's own gguf-py.

  python3 Tests/llama/test_llama.py --ternq .build/release/ternq --llama-bin DIR --vocab VOCAB.gguf

Every check is one named case; the last line is 'llama: N passed, N failed' (exit 1 on any failure).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

import gguf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import expected as X  # noqa: E402
import make_model  # noqa: E402

T = gguf.GGMLQuantizationType
HERE = Path(__file__).resolve().parent
TQ = {"tq2_0": T.TQ2_0, "tq1_0": T.TQ1_0}
FILE_TYPE = {"tq2_0": 37, "tq1_0": 36}
TINY = "blk.1.attn_v.weight"          # scaled by 1e-9 in the F32 model: f16(alpha) underflows
PPL_TOLERANCE = 0.03                  # relative


class Failure(Exception):
    pass


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise Failure(msg)


class Runner:
    def __init__(self, args):
        self.a = args
        self.work = Path(args.work)
        self.passed: list[str] = []
        self.failed: list[str] = []
        self.skipped: list[str] = []
        self.ppl: dict[str, float] = {}
        self.readers: dict = {}

    # ------------------------------------------------------------------ helpers
    def reader(self, path: Path) -> gguf.GGUFReader:
        """gguf-py's reader (slow on a 32000-token vocab), cached per file version."""
        st = Path(path).stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        if key not in self.readers:
            self.readers[key] = gguf.GGUFReader(str(path))
        return self.readers[key]

    def bin(self, name: str) -> str:
        return str(Path(self.a.llama_bin) / name)

    def run(self, cmd: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def ternq(self, *args: str) -> subprocess.CompletedProcess:
        return self.run([self.a.ternq, *args])

    def quantize(self, src: Path, out: Path, typ: str, *extra: str) -> None:
        if out.exists():
            out.unlink()
        p = self.ternq("quantize", str(src), "-o", str(out), "--gguf-type", typ, "--backend", "cpu",
                       "--quiet", *extra)
        check(p.returncode == 0, f"ternq quantize {src.name} ({typ}) exited {p.returncode}: {p.stderr.strip()[-2000:]}")
        check(out.is_file(), f"ternq quantize {src.name} wrote no {out.name}")

    def case(self, name: str, fn, *args, **kwargs) -> bool:
        t0 = time.monotonic()
        try:
            note = fn(*args, **kwargs)
        except Failure as e:
            self.failed.append(name)
            print(f"FAIL  {name}: {e}", flush=True)
            return False
        except Exception as e:  # a bug in the check itself, or a tool that crashed: still a failure
            self.failed.append(name)
            print(f"FAIL  {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
            return False
        if note == "skip":
            self.skipped.append(name)
            print(f"skip  {name}", flush=True)
            return True
        self.passed.append(name)
        print(f"ok    {name} ({time.monotonic() - t0:.1f} s){': ' + note if note else ''}", flush=True)
        return True

    # ------------------------------------------------------------------ models
    def make_models(self):
        v = self.a.vocab
        make_model.write_model(str(self.work / "model-f32.gguf"), v, kind="f32", tiny_tensor=TINY)
        make_model.write_model(str(self.work / "bitnet-f16.gguf"), v, kind="ternary", seed=11)
        make_model.write_model(str(self.work / "bitnet-bf16.gguf"), v, kind="ternary-bf16", seed=13)
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(self.work.glob("*.gguf")))
        return sizes

    # ------------------------------------------------------------------ value checks
    def check_quantized(self, src: Path, out: Path, typ: str, *, categories: set[str] | None = None,
                        ordered: bool = True) -> str:
        """Tensors: same names/order/shapes; kept tensors byte-identical; selected ones exactly f16(a)*t."""
        ri, ro = self.reader(src), self.reader(out)
        if ordered:
            check([t.name for t in ri.tensors] == [t.name for t in ro.tensors],
                  f"tensor names/order differ: {[t.name for t in ro.tensors]}")
        by_name = {t.name: t for t in ro.tensors}
        check(sorted(by_name) == sorted(t.name for t in ri.tensors), "tensor names differ")
        counts = {"tq": 0, "f16-fallback": 0, "f32-safe-scale": 0, "kept": 0}
        for ti in ri.tensors:
            to = by_name[ti.name]
            ne = [int(x) for x in ti.shape]
            check([int(x) for x in to.shape] == ne, f"{ti.name}: shape {list(to.shape)} != {ne}")
            if not X.selected(ti.name, ne):
                if categories is not None and "kept" not in categories:
                    continue
                check(to.tensor_type == ti.tensor_type, f"{ti.name}: kept tensor became {to.tensor_type.name}")
                check(np.asarray(ti.data).tobytes() == np.asarray(to.data).tobytes(),
                      f"{ti.name}: kept tensor's bytes changed")
                counts["kept"] += 1
                continue
            w = X.tensor_f32(ti)
            want_type, want, d_bits = X.expected_stored(w, ne[0], TQ[typ])
            cat = {TQ[typ]: "tq", T.F16: "f16-fallback", T.F32: "f32-safe-scale"}[want_type]
            if categories is not None and cat not in categories:
                continue
            check(to.tensor_type == want_type,
                  f"{ti.name} (ne0 {ne[0]}, alpha {X.exact_alpha(w)!r}): type {to.tensor_type.name}, expected {want_type.name}")
            got = X.tensor_f32(to)
            bad = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
            check(bad.size == 0, f"{ti.name}: {bad.size} of {w.size} values differ from f16(alpha)*t; "
                                 f"first at {bad[:1].tolist()}: {got[bad[:1]].tolist()} != {want[bad[:1]].tolist()}")
            if d_bits is not None:
                ds = X.block_scales(to)
                check(bool(np.all(ds == d_bits)), f"{ti.name}: block d {np.unique(ds)[:4]} != f16(alpha) {d_bits:#06x}")
            counts[cat] += 1
        if categories is not None:
            check(sum(counts[c] for c in categories) > 0, f"no tensor of category {sorted(categories)}")
        return ", ".join(f"{k} {v}" for k, v in counts.items() if v)

    def check_kvs(self, src: Path, out: Path, typ: str | None, *, ignore_prefixes=("ternq.",)) -> str:
        """Every input KV carried with the same key, type and value, apart from the documented changes."""
        fi, fo = X.user_fields(self.reader(src)), X.user_fields(self.reader(out))
        changed = {"general.file_type", "general.quantization_version"} if typ else set()
        for k, f in fi.items():
            if k in changed or any(k.startswith(p) for p in ignore_prefixes):
                continue
            check(k in fo, f"KV {k} dropped")
            check(X.field_bytes(f) == X.field_bytes(fo[k]),
                  f"KV {k} changed: {f.types} {str(f.contents())[:80]} -> {fo[k].types} {str(fo[k].contents())[:80]}")
        extra = [k for k in fo if k not in fi and k not in changed and not any(k.startswith(p) for p in ignore_prefixes)]
        check(not extra, f"unexpected new KVs {extra}")
        if typ:
            for key, want in (("general.file_type", FILE_TYPE[typ]), ("general.quantization_version", 2)):
                check(key in fo, f"{key} missing")
                f = fo[key]
                check(f.types == [gguf.GGUFValueType.UINT32] and int(f.contents()) == want,
                      f"{key} = {f.types} {f.contents()}, expected UINT32 {want}")
        prov = sorted(k for k in fo if k.startswith("ternq."))
        return f"{len(fi)} input KVs carried; provenance {prov}"

    # ------------------------------------------------------------------ references
    def write_reference(self, src: Path, out: Path, typ: str) -> None:
        """An F32 GGUF holding exactly the values ternq must store (from expected.py, not from ternq)."""
        r = self.reader(src)
        arch = r.fields["general.architecture"].contents()
        w = gguf.GGUFWriter(str(out), arch)
        for k, f in X.user_fields(r).items():
            if k == "general.architecture":
                continue
            sub = f.types[1] if f.types[0] == gguf.GGUFValueType.ARRAY and len(f.types) > 1 else None
            w.add_key_value(k, f.contents(), f.types[0], sub_type=sub)
        for t in r.tensors:
            ne = [int(x) for x in t.shape]
            vals = X.tensor_f32(t)
            if X.selected(t.name, ne):
                vals = X.expected_stored(vals, ne[0], TQ[typ])[1]
            w.add_tensor(t.name, vals.reshape(list(reversed(ne))))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    def same_values(self, a: Path, b: Path) -> str:
        """Same tensor names (llama-quantize sorts them), shapes and float32 values."""
        ra, rb = self.reader(a), self.reader(b)
        ta, tb = {t.name: t for t in ra.tensors}, {t.name: t for t in rb.tensors}
        check(sorted(ta) == sorted(tb), f"tensor names differ: {sorted(set(ta) ^ set(tb))}")
        for name, t in ta.items():
            check([int(x) for x in t.shape] == [int(x) for x in tb[name].shape], f"{name}: shapes differ")
            va, vb = X.tensor_f32(t), X.tensor_f32(tb[name])
            check(np.array_equal(va, vb), f"{name}: {int(np.sum(va != vb))} values differ")
        return f"{len(ta)} tensors equal"

    # ------------------------------------------------------------------ llama.cpp
    def perplexity(self, model: Path) -> float:
        # llama.cpp logs through a worker thread that can lose the last lines when the process exits, so
        # a run that succeeded without printing its result is repeated (at most 3 runs).
        for attempt in range(3):
            p = self.run([self.bin("llama-perplexity"), "-m", model, "-f", self.a.text, "-c", "128",
                          "--chunks", "4", "-t", "2", "-b", "128", "--no-warmup"])
            out = p.stdout + p.stderr
            check(p.returncode == 0, f"llama-perplexity {model.name} exited {p.returncode}: {out.strip()[-1500:]}")
            m = re.search(r"Final estimate: PPL = ([0-9.eE+naif-]+)", out) or re.search(r"\[4\]([0-9.eE+naif-]+),", out)
            if m is not None:
                break
        check(m is not None, f"llama-perplexity {model.name}: no result in 3 runs: {out.strip()[-800:]}")
        v = float(m.group(1))
        check(math.isfinite(v) and v > 1, f"llama-perplexity {model.name}: PPL {v}")
        self.ppl[model.name] = v
        return v

    def ppl_close(self, model: Path, ref: Path) -> str:
        a = self.ppl.get(model.name) or self.perplexity(model)
        b = self.ppl.get(ref.name) or self.perplexity(ref)
        rel = abs(a - b) / b
        check(rel <= PPL_TOLERANCE, f"PPL {model.name} {a:.4f} vs {ref.name} {b:.4f}: {rel:.2%} > {PPL_TOLERANCE:.0%}")
        return f"PPL {a:.4f} vs {b:.4f} ({rel:.3%})"

    def completion(self, model: Path) -> str:
        for attempt in range(3):  # see perplexity(): the log thread can lose output at exit
            p = self.run([self.bin("llama-completion"), "-m", model, "-p", "The lighthouse keeper", "-n", "16",
                          "-t", "2", "--temp", "0", "-no-cnv", "--no-warmup", "-c", "128", "--ignore-eos",
                          "--no-display-prompt", "--simple-io"])
            check(p.returncode == 0, f"llama-completion exited {p.returncode}: {(p.stdout + p.stderr).strip()[-1500:]}")
            text = p.stdout.strip()
            if text:
                break
        check(text != "", f"llama-completion generated no text in 3 runs: {p.stderr.strip()[-800:]}")
        return f"generated {text[:60]!r}"

    def llama_quantize(self, src: Path, out: Path, typ: str, *extra: str) -> None:
        p = self.run([self.bin("llama-quantize"), *extra, src, out, typ.upper(), "2"])
        check(p.returncode == 0, f"llama-quantize {typ} exited {p.returncode}: {(p.stdout + p.stderr).strip()[-1500:]}")

    # ------------------------------------------------------------------ cases
    def llama_output_reads_back(self, typ: str) -> str:
        src, out = self.work / "model-f32.gguf", self.work / f"llama-{typ}.gguf"
        self.llama_quantize(src, out, typ)
        p = self.ternq("info", str(out))
        check(p.returncode == 0, f"ternq info {out.name} exited {p.returncode}: {p.stderr.strip()[-1500:]}")
        r = self.reader(out)
        lines = p.stdout.splitlines()
        for t in r.tensors:
            row = [ln for ln in lines if ln.split()[:1] == [t.name]]
            check(len(row) == 1, f"ternq info lists {t.name} {len(row)} times")
            check(t.tensor_type.name in row[0].split(), f"ternq info row for {t.name} lacks type {t.tensor_type.name}: {row[0]}")
        m = re.search(r"tensors\s+(\d+)", p.stdout)
        check(m is not None and int(m.group(1)) == len(r.tensors), "ternq info tensor count")
        types = sorted({t.tensor_type.name for t in r.tensors})
        return f"{len(r.tensors)} tensors, types {types}"

    def rewrite_llama_output(self, typ: str) -> str:
        """A GGUF that llama.cpp wrote (llama-quantize's output), re-written by ternq: KVs identical apart
        from the documented changes, every non-float tensor (TQ2_0, Q4_0, Q6_K, ...) byte for byte."""
        src = self.work / f"llama-{typ}.gguf"
        if not src.exists():
            self.llama_quantize(self.work / "model-f32.gguf", src, typ)
        return self.rewrite(src, typ)

    def requantize_own_output(self, typ: str) -> str:
        """ternq's own output quantized again: the same file content, ternq.* keys replaced, not duplicated."""
        src = self.work / f"model-f32-{typ}.gguf"
        note = self.rewrite(src, typ)
        n_src = len([k for k in self.reader(src).fields if k.startswith("ternq.")])
        out = self.reader(self.work / f"{src.stem}-rewritten.gguf")
        keys = [k for k in out.fields if k.startswith("ternq.")]
        check(len(keys) == n_src, f"ternq.* keys {keys}, expected {n_src} (gguf-py renames duplicates)")
        kv_count = int(out.fields["GGUF.kv_count"].contents())
        check(kv_count == len(X.user_fields(out)), f"header kv_count {kv_count} != {len(X.user_fields(out))} distinct keys")
        return note

    def rewrite(self, src: Path, typ: str) -> str:
        out = self.work / f"{src.stem}-rewritten.gguf"
        self.quantize(src, out, typ)
        ri, ro = self.reader(src), self.reader(out)
        check([t.name for t in ri.tensors] == [t.name for t in ro.tensors], "tensor names/order differ")
        floats = (T.F32, T.F16, T.BF16)
        passed = 0
        for ti, to in zip(ri.tensors, ro.tensors):
            ne = [int(x) for x in ti.shape]
            if ti.tensor_type in floats and X.selected(ti.name, ne):
                # ternq's F16/F32 ternary fallbacks: already ternary, so re-encoded without a change
                check(np.array_equal(X.tensor_f32(ti), X.tensor_f32(to)), f"{ti.name}: values changed")
                continue
            check(to.tensor_type == ti.tensor_type and [int(x) for x in to.shape] == ne,
                  f"{ti.name}: {ti.tensor_type.name} {ne} became {to.tensor_type.name} {list(to.shape)}")
            check(np.asarray(ti.data).tobytes() == np.asarray(to.data).tobytes(), f"{ti.name}: bytes changed")
            passed += ti.tensor_type not in floats
        self.check_kvs(src, out, typ)
        return f"{passed} quantized tensors passed through byte for byte, KVs identical"

    def negative_control(self) -> str:
        """The value checker must reject llama-quantize's TQ2_0 (per-block absmax, not absmean)."""
        src, out = self.work / "model-f32.gguf", self.work / "llama-tq2_0.gguf"
        if not out.exists():
            self.llama_quantize(src, out, "tq2_0")
        try:
            self.check_quantized(src, out, "tq2_0", categories={"tq"}, ordered=False)
        except Failure as e:
            return f"rejected as expected: {str(e)[:100]}"
        raise Failure("check_quantized accepted llama-quantize's absmax TQ2_0 output")

    def already_ternary(self, name: str, typ: str) -> str:
        src, out = self.work / f"{name}.gguf", self.work / f"{name}-{typ}.gguf"
        self.quantize(src, out, typ)
        ri, ro = self.reader(src), self.reader(out)
        n = 0
        for ti, to in zip(ri.tensors, ro.tensors):
            ne = [int(x) for x in ti.shape]
            if not X.selected(ti.name, ne):
                continue
            w, got = X.tensor_f32(ti), X.tensor_f32(to)
            a = X.ternary_magnitude(w)
            check(a is not None, f"generator bug: {ti.name} is not ternary")
            check(np.array_equal(w, got), f"{ti.name}: {int(np.sum(w != got))} values changed "
                                          f"(input magnitude {a!r}, output magnitudes {np.unique(np.abs(got))[:4]})")
            if ne[0] % X.QK_K == 0:
                check(to.tensor_type == TQ[typ], f"{ti.name}: type {to.tensor_type.name}, expected {typ.upper()}")
                d = int(np.array(np.float16(a)).view(np.uint16))
                check(bool(np.all(X.block_scales(to) == d)), f"{ti.name}: block d != f16(a)")
            else:
                check(to.tensor_type in (T.F16, ti.tensor_type), f"{ti.name}: type {to.tensor_type.name}")
            n += 1
        self.check_kvs(src, out, typ)
        return f"{n} tensors re-encoded losslessly"

    def split_input(self) -> str:
        src = self.work / "model-f32.gguf"
        d = self.work / "split"
        d.mkdir(exist_ok=True)
        p = self.run([self.bin("llama-gguf-split"), "--split", "--split-max-tensors", "8", src, d / "model"])
        check(p.returncode == 0, f"llama-gguf-split exited {p.returncode}: {(p.stdout + p.stderr)[-800:]}")
        shards = sorted(d.glob("model-*-of-*.gguf"))
        check(len(shards) >= 2, f"llama-gguf-split wrote {len(shards)} shards")
        out = self.work / "split-tq2_0.gguf"
        self.quantize(shards[0], out, "tq2_0")
        whole = self.work / "model-f32-tq2_0.gguf"
        rw, ro = self.reader(whole), self.reader(out)
        check([t.name for t in rw.tensors] == [t.name for t in ro.tensors], "split input: tensor list differs")
        for a, b in zip(rw.tensors, ro.tensors):
            check(a.tensor_type == b.tensor_type and np.asarray(a.data).tobytes() == np.asarray(b.data).tobytes(),
                  f"split input: {a.name} differs from the unsplit model's output")
        fo = X.user_fields(ro)
        check(not [k for k in fo if k.startswith("split.")], f"split keys kept: {[k for k in fo if k.startswith('split.')]}")
        self.check_kvs(whole, out, None)
        return f"{len(shards)} shards -> one file, identical to the unsplit output"

    def opencl_identical(self, typ: str) -> str:
        p = self.ternq("devices")
        if p.returncode != 0 or "opencl" not in (p.stdout + p.stderr).lower() or not re.search(r"^\s*\[?\d", p.stdout, re.M):
            return "skip"
        src, cpu, ocl = self.work / "model-f32.gguf", self.work / f"model-f32-{typ}.gguf", self.work / f"ocl-{typ}.gguf"
        q = self.ternq("quantize", str(src), "-o", str(ocl), "--gguf-type", typ, "--backend", "opencl", "--quiet")
        check(q.returncode == 0, f"ternq --backend opencl exited {q.returncode}: {q.stderr.strip()[-1000:]}")
        rc, ro = self.reader(cpu), self.reader(ocl)
        for a, b in zip(rc.tensors, ro.tensors, strict=True):
            check(a.tensor_type == b.tensor_type and np.asarray(a.data).tobytes() == np.asarray(b.data).tobytes(),
                  f"{a.name}: OpenCL output differs from CPU output")
        self.check_kvs(cpu, ocl, None)
        return "tensor bytes identical to --backend cpu"

    def bad_input(self, label: str, data: bytes) -> str:
        d = self.work / f"bad-{label}"
        d.mkdir(exist_ok=True)
        src = d / "in.gguf"
        src.write_bytes(data)
        before = sorted(os.listdir(d))
        out = d / "out.gguf"
        p = self.run([self.a.ternq, "quantize", src, "-o", out, "--backend", "cpu", "--quiet"])
        check(p.returncode > 0, f"exit status {p.returncode} (want an error exit, not success or a signal); "
                                f"stderr: {p.stderr.strip()[-400:]}")
        check(not out.exists(), "an output file was left behind")
        check(sorted(os.listdir(d)) == before, f"stray files left: {sorted(set(os.listdir(d)) - set(before))}")
        check(p.stderr.strip() != "", "no error message")
        shutil.rmtree(d)
        return p.stderr.strip().splitlines()[-1][:160]

    def bad_inputs(self):
        good = (self.work / "model-f32.gguf").read_bytes()
        r = self.reader(self.work / "model-f32.gguf")
        t0 = r.tensors[0]
        # tensor info parts: name length, name, n_dims, dims, type, offset
        dims_at = t0.field.offset + 8 + len(t0.name.encode()) + 4
        offset_at = dims_at + 8 * len(t0.shape) + 4
        sel = next(t for t in r.tensors if X.selected(t.name, [int(x) for x in t.shape]))
        nan_at = sel.data_offset + 4 * 100

        def patch(at: int, fmt: str, value) -> bytes:
            b = bytearray(good)
            struct.pack_into(fmt, b, at, value)
            return bytes(b)

        cases = [
            ("truncated-data", good[: len(good) // 2]),
            ("truncated-header", good[:4096]),
            ("empty", b""),
            ("bad-magic", b"GGUX" + good[4:]),
            ("bad-version", patch(4, "<I", 99)),
            ("huge-dimension", patch(dims_at, "<Q", 2**61 - 1)),
            ("offset-past-end", patch(offset_at, "<Q", len(good))),
            ("misaligned-offset", patch(offset_at, "<Q", 3)),
            ("huge-kv-count", patch(16, "<Q", 2**62)),
            ("huge-key-length", patch(24, "<Q", 2**62)),
            ("bad-value-type", patch(24 + 8 + struct.unpack_from("<Q", good, 24)[0], "<I", 1000)),
            ("nan-weight", patch(nan_at, "<f", float("nan"))),
        ]
        for label, data in cases:
            self.case(f"bad input {label}: error exit, no output", self.bad_input, label, data)

    # ------------------------------------------------------------------ main
    def main(self) -> int:
        print(f"llama: ternq {self.a.ternq}, llama.cpp {self.a.llama_bin}, vocab {Path(self.a.vocab).name}", flush=True)
        if not self.case("generate models (gguf-py)", self.make_models):
            return self.summary()
        f32 = self.work / "model-f32.gguf"
        self.case("llama.cpp runs the generated F32 model", lambda: f"PPL {self.perplexity(f32):.2f}")
        for typ in ("tq2_0", "tq1_0"):
            out = self.work / f"model-f32-{typ}.gguf"
            if not self.case(f"ternq quantize F32 -> {typ}", self.quantize, f32, out, typ):
                continue
            self.case(f"{typ}: TQ tensors hold f16(alpha)*t exactly", self.check_quantized, f32, out, typ, categories={"tq"})
            self.case(f"{typ}: ne0 % 256 != 0 -> F16 holding f16(alpha)*t", self.check_quantized, f32, out, typ, categories={"f16-fallback"})
            self.case(f"{typ}: f16(alpha) underflow -> F32 holding alpha*t", self.check_quantized, f32, out, typ, categories={"f32-safe-scale"})
            self.case(f"{typ}: every tensor (names, order, shapes, kept bytes)", self.check_quantized, f32, out, typ)
            self.case(f"{typ}: KVs carried, file_type {FILE_TYPE[typ]}, quantization_version 2", self.check_kvs, f32, out, typ)
            ref_np = self.work / f"ref-{typ}-numpy-f32.gguf"
            ref_lq = self.work / f"ref-{typ}-llama-f32.gguf"
            self.case(f"{typ}: reference F32 written from the exact rule (numpy)", self.write_reference, f32, ref_np, typ)
            self.case(f"{typ}: llama-quantize --allow-requantize F32 equals the reference",
                      lambda o=out, r=ref_lq, n=ref_np: (self.llama_quantize(o, r, "f32", "--allow-requantize"), self.same_values(r, n))[1])
            self.case(f"{typ}: llama-perplexity within {PPL_TOLERANCE:.0%} of the reference F32", self.ppl_close, out, ref_np)
            self.case(f"{typ}: llama-completion generates", self.completion, out)
            self.case(f"{typ}: --backend opencl writes the same tensors", self.opencl_identical, typ)
        self.case("already ternary F16 (BitNet export) -> tq2_0 losslessly", self.already_ternary, "bitnet-f16", "tq2_0")
        self.case("already ternary F16 (BitNet export) -> tq1_0 losslessly", self.already_ternary, "bitnet-f16", "tq1_0")
        self.case("already ternary BF16 -> tq2_0 losslessly", self.already_ternary, "bitnet-bf16", "tq2_0")
        self.case("already ternary tq2_0 output runs in llama.cpp", lambda: f"PPL {self.perplexity(self.work / 'bitnet-f16-tq2_0.gguf'):.2f}")
        self.case("split GGUF input (llama-gguf-split) reads as one checkpoint", self.split_input)
        for typ in ("tq2_0", "tq1_0"):
            self.case(f"llama-quantize {typ.upper()} output reads back through ternq info", self.llama_output_reads_back, typ)
        for typ in ("tq2_0", "tq1_0"):
            self.case(f"llama-quantize {typ.upper()} output re-written by ternq (KVs identical, tensors byte for byte)",
                      self.rewrite_llama_output, typ)
            self.case(f"ternq's own {typ} output quantized again (same tensors, ternq.* keys not duplicated)",
                      self.requantize_own_output, typ)
        self.case("negative control: the value check rejects llama-quantize's absmax TQ2_0", self.negative_control)
        self.bad_inputs()
        return self.summary()

    def summary(self) -> int:
        if self.ppl:
            print("perplexities: " + ", ".join(f"{k} {v:.4f}" for k, v in self.ppl.items()))
        if self.failed:
            print("failed: " + "; ".join(self.failed))
        extra = f", {len(self.skipped)} skipped" if self.skipped else ""
        print(f"llama: {len(self.passed)} passed, {len(self.failed)} failed{extra}")
        return 1 if self.failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ternq", required=True)
    p.add_argument("--llama-bin", required=True, help="directory with llama-quantize, llama-perplexity, ...")
    p.add_argument("--vocab", required=True, help="models/ggml-vocab-llama-spm.gguf from the llama.cpp tree")
    p.add_argument("--text", default=str(HERE / "text.txt"))
    p.add_argument("--work", default=None, help="scratch directory (default: a temporary one, removed)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    a = p.parse_args()
    tmp = None
    if a.work is None:
        tmp = tempfile.mkdtemp(prefix="ternq-llama-")
        a.work = tmp
    Path(a.work).mkdir(parents=True, exist_ok=True)
    try:
        return Runner(a).main()
    finally:
        if tmp and not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif a.keep:
            print(f"scratch kept in {a.work}")


if __name__ == "__main__":
    sys.exit(main())
