"""Generation throughput: the in-process hf engine vs the openai engine on a local `transformers serve`.

Same prompts (the personalization demo set), same model files, same sampling settings; generated tokens are
counted by re-tokenising the responses with the model's tokenizer, so both engines are measured alike. The server
runs with --continuous-batching (concurrent requests are batched); --plain also measures it without, where it
generates one request at a time.

    .venv/bin/python bench/engines.py                      # embedded SmolLM2-135M-Instruct, 32 prompts
    .venv/bin/python bench/engines.py --model /path/to/dir --prompts 64 --max-new-tokens 128 --plain

The CPU of a shared machine makes the numbers move between runs; compare engines within one run.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mipo import ModelArgs, models  # noqa: E402
from mipo.config import TaskArgs  # noqa: E402
from mipo.inference import Sampling  # noqa: E402
from mipo.inference.hf import HFEngine  # noqa: E402
from mipo.inference.openai import OpenAIEngine  # noqa: E402
from mipo.tasks import get_task  # noqa: E402
from tests.openai_server import LocalServer, servable_copy  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--batch-size", type=int, default=32, help="hf engine batch")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[8, 32], help="openai engine requests in flight")
    ap.add_argument("--plain", action="store_true", help="also serve without continuous batching (slow)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))  # so the server is stopped on `kill`

    path = models.resolve(ModelArgs(name=args.model))
    task = get_task("personalization")
    items = task.load(TaskArgs(), "train")[: args.prompts]
    prompts = [task.messages(it) for it in items]
    sampling, kw = Sampling(args.temperature, 0.9, args.max_new_tokens), dict(seed=0)
    results = []

    model, tok = models.load(ModelArgs(name=args.model), path)

    def count(texts):
        return sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)

    def record(name, texts, seconds, **extra):
        n = count(texts)
        results.append({"engine": name, "prompts": len(texts), "tokens": n, "seconds": round(seconds, 2),
                        "tokens_per_s": round(n / seconds, 1), **extra})
        print(json.dumps(results[-1]), flush=True)

    hf = HFEngine(model, tok)
    t0 = time.perf_counter()
    texts = hf.sample(prompts, sampling, batch_size=args.batch_size, desc="hf", **kw)
    record(f"hf (in-process, batch {args.batch_size})", texts, time.perf_counter() - t0)
    del model, hf

    with tempfile.TemporaryDirectory() as tmp:
        served = servable_copy(Path(path), Path(tmp) / "model")
        variants = [("transformers serve --continuous-batching", ["--continuous-batching"])]
        if args.plain:
            variants.append(("transformers serve", []))
        for label, extra in variants:
            t0 = time.perf_counter()
            with LocalServer(served, Path(tmp) / "serve.log", extra_args=extra) as srv:
                startup = time.perf_counter() - t0
                for conc in args.concurrency:
                    eng = OpenAIEngine(srv.base_url, max_concurrency=conc)
                    eng.api_model  # noqa: B018 (resolve the model name outside the timing)
                    t0 = time.perf_counter()
                    texts = eng.sample(prompts, sampling, batch_size=args.batch_size, desc=f"openai x{conc}", **kw)
                    record(f"openai -> {label}, concurrency {conc}", texts, time.perf_counter() - t0,
                           server_startup_s=round(startup, 1), server_completion_tokens=eng.stats["completion_tokens"])
    print("\n| engine | prompts | tokens | seconds | tokens/s |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['engine']} | {r['prompts']} | {r['tokens']} | {r['seconds']} | {r['tokens_per_s']} |")


if __name__ == "__main__":
    main()
