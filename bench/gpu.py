"""mipo on a GPU (issue 17): generation tokens/s of mipo's sampler vs `model.generate`, with the fraction of the
memory/compute limit, and the DPO step's MFU (full fine-tune, LoRA) with peak memory. No download: the model is a
random-initialised Llama of the chosen shape, built and saved here, and loaded the way mipo loads any local model.

    python bench/gpu.py --shape 1b --out gpu.json          # on a CUDA machine (bf16, mipo's dtype rule)
    python bench/gpu.py --shape tiny --out /tmp/gpu.json   # on a CPU (fp32), a smoke run in well under a minute

Prints progress lines and a table; writes every figure to --out as JSON (atomically). Peaks: the device's spec
sheet (bench/gpu_model.py PEAKS) or --peak-bw/--peak-flops; on a CPU, fractions only when the peaks are given.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import tempfile
import time
import traceback
from functools import partial
from pathlib import Path

import torch
from gpu_dpo import dpo_section
from gpu_model import build, clock, free, kv_bytes_per_token, peak_memory, peaks, reset_peak

from mipo import ModelArgs, models
from mipo.inference import Sampling
from mipo.inference.decode import decode
from mipo.inference.graphs import decode_fixed
from mipo.inference.hf import eos_ids
from mipo.io import write_json

# per shape: (prompts, batch, shortest and longest prompt, new tokens, pairs/step, prompt and response characters,
# max_length). 1b/7b: the workload (~20k tokens per DPO step of 8 pairs); tiny: seconds on a CPU.
DEFAULTS = {"tiny": (16, 16, 47, 99, 16, 4, 120, 60, 512),
            "1b": (128, 128, 47, 227, 128, 8, 560, 600, 2048), "7b": (128, 128, 47, 227, 128, 8, 560, 600, 2048)}
PREFIX = 27  # tokens every prompt shares (a system turn and the start of the user turn, as in the issue)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=list(DEFAULTS), default="tiny")
    ap.add_argument("--out", type=Path, required=True, help="JSON file of every figure")
    ap.add_argument("--sections", default="generation,dpo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--peak-bw", type=float, help="bytes/s; default: the device's spec sheet (none on CPU)")
    ap.add_argument("--peak-flops", type=float, help="FLOP/s; default: the device's dense bf16 spec (none on CPU)")
    for flag in ("prompts", "batch", "min-prompt", "max-prompt", "max-new-tokens", "pairs-per-step", "prompt-chars",
                 "response-chars", "max-length"):
        ap.add_argument(f"--{flag}", type=int, help="default: per shape (DEFAULTS)")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--warmup-steps", type=int, default=1, help="DPO steps before the timed ones (at least 1)")
    ap.add_argument("--timed-steps", type=int, default=3)
    ap.add_argument("--arms", default="", help="comma list of DPO arms (gpu_dpo.ARMS names); default all")
    ap.add_argument("--keep-model", type=Path, help="write the random model here and keep it (e.g. for `mipo run "
                    "--model.name DIR`); default: a temporary directory")
    args = ap.parse_args(argv)
    names = ("prompts", "batch", "min_prompt", "max_prompt", "max_new_tokens", "pairs_per_step", "prompt_chars",
             "response_chars", "max_length")
    for name, default in zip(names, DEFAULTS[args.shape]):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.warmup_steps < 1 or args.timed_steps < 1 or args.min_prompt <= PREFIX:
        ap.error("--warmup-steps and --timed-steps must be >= 1, --min-prompt > 27")
    return args


def make_prompts(args) -> list[list[int]]:
    """Token ids: a shared PREFIX, then each prompt's own bytes, lengths spread evenly from min to max prompt."""
    g = torch.Generator().manual_seed(args.seed)
    prefix = torch.randint(0, 256, (PREFIX,), generator=g).tolist()
    lengths = torch.linspace(args.min_prompt, args.max_prompt, args.prompts).round().long().tolist()
    return [prefix + torch.randint(0, 256, (n - PREFIX,), generator=g).tolist() for n in lengths]


def run_mipo(model, tok, prompts, sampling, batch, seed, device, loop=decode) -> tuple[int, int]:
    """mipo's sampler over the prompts in batches (longest first, as run_batches orders them): (tokens, steps).
    loop: `decode` (rows dropped as they end; the hf engine's CPU loop) or `decode_fixed` (fixed shapes, the step
    replayed from a CUDA graph on CUDA; the hf engine's CUDA loop)."""
    order = sorted(prompts, key=len, reverse=True)
    tokens = steps = 0
    for b, s in enumerate(range(0, len(order), batch)):
        gen = torch.Generator(device=device).manual_seed(seed + b)
        out = loop(model, order[s:s + batch], sampling, pad_id=tok.pad_token_id, eos_ids=eos_ids(model, tok),
                   gen=gen)
        tokens, steps = tokens + sum(map(len, out)), steps + max(map(len, out))
    return tokens, steps


def run_generate(model, tok, prompts, sampling, batch, seed, device, cache: str | None = None) -> tuple[int, int]:
    """`model.generate` on the same batches, left-padded; tokens counted up to the end token as mipo's are.
    cache="static": transformers' static KV cache, with which generate compiles the decode step on CUDA
    (torch.compile "reduce-overhead": CUDA graphs, one launch per step) - the library's own answer to a decode
    step bound by kernel launches, measured here before mipo builds its own."""
    order, stop = sorted(prompts, key=len, reverse=True), eos_ids(model, tok)
    tokens = steps = 0
    torch.manual_seed(seed)
    for s in range(0, len(order), batch):
        rows = order[s:s + batch]
        width = len(rows[0])
        ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows], device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=sampling.temperature,
                                 top_p=sampling.top_p, top_k=None, max_new_tokens=sampling.max_new_tokens,
                                 pad_token_id=tok.pad_token_id, eos_token_id=sorted(stop),
                                 **({"cache_implementation": cache} if cache else {}))
        new = out[:, width:].tolist()
        tokens += sum(next((j + 1 for j, t in enumerate(row) if t in stop), len(row)) for row in new)
        steps += len(new[0])
    return tokens, steps


def limit(prompts, args, model, facts, peak) -> dict:
    """The fastest the batches could run: each decode step reads the weights once and every row's KV cache
    (its real context: prompt + tokens so far) at peak bandwidth, or does 2N FLOP per row at peak FLOP/s, whichever
    is longer; the prefill does 2N FLOP per prompt token (the shared prefix once per batch). Every row is assumed
    to run all max_new_tokens, as the random model's zeroed end-token row makes it do."""
    if not (peak["peak_bw"] and peak["peak_flops"]):
        return {}
    weights = facts["matmul_params"] * model.dtype.itemsize
    kv, n2 = kv_bytes_per_token(model.config, model.dtype), 2 * facts["matmul_params"]
    order, seconds, tokens = sorted(prompts, key=len, reverse=True), 0.0, 0
    for s in range(0, len(order), args.batch):
        rows = order[s:s + args.batch]
        seconds += n2 * (sum(len(r) - PREFIX for r in rows) + PREFIX) / peak["peak_flops"]
        for step in range(args.max_new_tokens):
            read = weights + kv * sum(len(r) + step for r in rows)
            seconds += max(read / peak["peak_bw"], n2 * len(rows) / peak["peak_flops"])
        tokens += len(rows) * args.max_new_tokens
    # the figure: decode steps of a full batch that read the weights alone
    return {"limit_tok_s": tokens / seconds, "weights_only_limit_tok_s": args.batch * peak["peak_bw"] / weights,
            "weight_bytes": weights, "kv_bytes_per_token": kv}


def generation_section(model_dir: Path, facts: dict, peak: dict, args, device, say) -> dict:
    """Each engine runs the whole workload twice: the first run (`first_run_s`) pays for warm-up and any
    compilation, the second is timed. An engine that fails is recorded with its error and the others still run."""
    model, tok = models.load(ModelArgs(name=str(model_dir)))
    prompts = make_prompts(args)
    sampling = Sampling(args.temperature, args.top_p, args.max_new_tokens)
    lim = limit(prompts, args, model, facts, peak)
    results = {}
    # the hf engine's CUDA loop first, today's loop second: a run cut short keeps the comparison issue 17 asks for.
    # graphs=True on CUDA: a step that cannot be recorded is an error here, not a silent eager fallback
    engines = {f"mipo-graphs@{args.batch}": partial(run_mipo, loop=partial(decode_fixed, graphs=device.type == "cuda")),
               f"mipo@{args.batch}": run_mipo, f"generate@{args.batch}": run_generate,
               f"generate-static@{args.batch}": lambda *a: run_generate(*a, cache="static")}
    for name, fn in engines.items():
        say(f"generation {name}: {len(prompts)} prompts, {args.max_new_tokens} new tokens")
        try:
            t0 = clock(device)
            fn(model, tok, prompts, sampling, args.batch, args.seed, device)
            first = clock(device) - t0
            reset_peak(device)
            t0 = clock(device)
            tokens, steps = fn(model, tok, prompts, sampling, args.batch, args.seed, device)
            seconds = clock(device) - t0
        except Exception as e:  # noqa: BLE001 - recorded, and the other engine still runs
            traceback.print_exc()
            results[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
            continue
        results[name] = {"tokens": tokens, "seconds": seconds, "first_run_s": first, "tok_s": tokens / seconds,
                         "ms_per_step": 1000 * seconds / steps, "peak_memory_bytes": peak_memory(device),
                         "of_limit": tokens / seconds / lim["limit_tok_s"] if lim else None}
        say(f"generation {name}: {tokens / seconds:.0f} tokens/s, {1000 * seconds / steps:.1f} ms per step")
    del model
    free(device)
    return {"prompts": len(prompts), "prompt_tokens": sum(map(len, prompts)), "shared_prefix": PREFIX,
            "batch": args.batch, "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
            "top_p": args.top_p, **lim, "engines": results}


def table(report: dict) -> str:
    gen, dpo, mem = report.get("generation"), report.get("dpo"), lambda b: f"{b / 2**30:.2f} GiB"
    pct = lambda x: f"{x:.1%}" if x is not None else "-"  # noqa: E731
    lines = [f"{report['machine']['device']}, torch {report['machine']['torch']}, {report['model']['shape']} shape "
             f"({report['model']['params'] / 1e6:.1f}M params, {report['model']['dtype']})"]
    if gen:
        limit_text = f"{gen['limit_tok_s']:.0f} tokens/s" if "limit_tok_s" in gen else "not computed (no peaks given)"
        lines += [f"\ngeneration: {gen['prompts']} prompts, {gen['max_new_tokens']} new tokens, "
                  f"T {gen['temperature']}, top_p {gen['top_p']}; limit {limit_text}",
                  f"{'engine@batch':20s} {'tokens/s':>10s} {'ms/step':>8s} {'of limit':>9s} {'peak mem':>10s}"]
        lines += [f"{k:20s} {v['error']}" if "error" in v else f"{k:20s} {v['tok_s']:10.1f} {v['ms_per_step']:8.1f} "
                  f"{pct(v['of_limit']):>9s} {mem(v['peak_memory_bytes']):>10s}" for k, v in gen["engines"].items()]
    if dpo:
        lines += [f"\nDPO: {dpo['pairs_per_step']} pairs/step. {dpo['flop_convention']}",
                  f"{'arm':30s} {'s/step':>7s} {'tokens/step':>11s} {'+precomp s':>10s} {'tokens/s':>9s} "
                  f"{'MFU':>6s} {'peak mem':>10s}"]
        for k, v in dpo["arms"].items():
            note = v.get("error") or v.get("skipped")
            lines.append(f"{k:30s} {note}" if note else
                         f"{k:30s} {v['s_per_step']:7.3f} {v['tokens_per_step']:11.0f} "
                         f"{v['precompute_s_per_step']:10.3f} {v['tok_s']:9.0f} {pct(v['mfu']):>6s} "
                         f"{mem(v['peak_memory_bytes']):>10s}")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    say = lambda msg: print(f"[gpu.py {time.perf_counter() - start:6.1f}s] {msg}", flush=True)  # noqa: E731
    device = models.pick_device("auto")
    dtype = models.pick_dtype("auto", device)  # mipo's rule: bf16 on CUDA, fp32 on CPU
    peak = peaks(device, args.peak_bw, args.peak_flops)
    versions = {name: importlib.metadata.version(name) for name in ("torch", "transformers", "trl", "peft",
                                                                   "accelerate")}
    report = {"machine": {**peak, **versions, "cuda": torch.version.cuda, "threads": torch.get_num_threads(),
                          "cpu": platform.processor() or platform.machine()},
              "args": {k: str(v) for k, v in vars(args).items()}}
    save = lambda: write_json(args.out, report)  # noqa: E731 - after each part: a run cut short keeps what it did
    with tempfile.TemporaryDirectory() as scratch:
        where = args.keep_model or Path(scratch)
        say(f"building the random {args.shape} model on {peak['device']} ({dtype}) in {where}")
        report["model"] = build(args.shape, where, device, dtype, args.seed)
        free(device)
        say(f"model: {report['model']['params'] / 1e6:.1f}M params; logits: {json.dumps(report['model']['logits'])}")
        save()
        if "generation" in args.sections:
            report["generation"] = generation_section(where, report["model"], peak, args, device, say)
            save()
        if "dpo" in args.sections:
            report["dpo"] = dpo_section(where, report["model"], peak, args, device, say,
                                        lambda part: (report.update(dpo=part), save()))
    print(table(report))
    say(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
