"""`mipo compare`: MIPO and its baselines on the same prompts, seeds and held-out items, in one table.

    run_dir/samples/<kind>-seed<s>/      one generate stage per kind of samples and seed, shared by the methods
    run_dir/<method>/seed<s>/            each method's run directory (pairs.jsonl copied in, train/)
    run_dir/compare.json, compare.md, compare.png

Evaluation loads the base model once: each trained model is the base plus its adapter (unloaded afterwards) or
its saved weights. Every model answers the same held-out items with the same decoding and is scored by the same
base model. Per method the table gives the mean over seeds, a 95% bootstrap CI over items of the seed-averaged
per-item values, and the paired difference to `prompting` (the base model) with its CI.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

from . import generate, models, pipeline
from .config import Config
from .evaluate import score_all, self_bleu4
from .io import MipoError, atomic_path, write_json, write_jsonl, write_text
from .methods import get_method
from .stats import bootstrap_ci, mean_present, paired_diff_ci
from .tasks import get_task

log = logging.getLogger("mipo")


def parse_lists(cfg: Config) -> tuple[list[str], list[int]]:
    methods = [m.strip() for m in cfg.compare.methods.split(",") if m.strip()]
    for m in methods:
        get_method(m)
    if len(set(methods)) != len(methods):
        raise MipoError(f"compare.methods: a method is listed twice ({cfg.compare.methods})")
    try:
        seeds = [int(s) for s in cfg.compare.seeds.split(",") if s.strip()]
    except ValueError:
        raise MipoError(f"compare.seeds: expected comma-separated integers, got '{cfg.compare.seeds}'") from None
    if not methods or not seeds:
        raise MipoError("compare: needs at least one method and one seed")
    return methods, seeds


def method_cfg(cfg: Config, method: str, seed: int) -> Config:
    return dataclasses.replace(cfg, method=method, seed=seed, run_dir=str(Path(cfg.run_dir) / method / f"seed{seed}"))


def train_all(cfg: Config, methods: list[str], seeds: list[int]) -> dict:
    """Generate (shared per kind and seed) and train every method; a method that fails is recorded, not fatal."""
    failures = {}
    for seed in seeds:
        for m in methods:
            kind = get_method(m).samples
            if kind is None:
                continue
            mcfg = method_cfg(cfg, m, seed)
            try:
                shared = Path(pipeline.generate(dataclasses.replace(
                    mcfg, run_dir=str(Path(cfg.run_dir) / "samples" / f"{kind}-seed{seed}"))))
                dst = Path(mcfg.run_dir)
                for rel in ("pairs.jsonl", "stages/generate.json", "config.yaml"):
                    if not (dst / rel).exists() or (dst / rel).read_bytes() != (shared.parent / rel).read_bytes():
                        with atomic_path(dst / rel) as tmp:
                            shutil.copyfile(shared.parent / rel, tmp)
                pipeline.train(mcfg)
            except MipoError as e:  # e.g. rlaif when the model's self-scores never separate two samples
                log.error("compare: %s seed %d failed: %s", m, seed, e)
                failures[f"{m}/seed{seed}"] = str(e)
    return failures


def _respond(cfg: Config, model, tok, prompts, seed: int, name: str, resume: Path) -> list[str]:
    e = cfg.evaluate
    # one resume dir for every model: the batch log's key names the weights and the active adapter's digest
    return generate.sample(model, tok, prompts, temperature=e.temperature, top_p=e.top_p,
                           max_new_tokens=e.max_new_tokens, batch_size=e.batch_size, seed=seed + 7,
                           desc=f"eval {name}", resume_dir=resume)


def evaluate_all(cfg: Config, methods: list[str], seeds: list[int], failures: dict) -> tuple[dict, list[dict]]:
    """Per-item metrics and responses of every (method, seed) on the held-out items."""
    root = Path(cfg.run_dir)
    task = get_task(cfg.task.name, cfg.task)
    items = task.load(cfg.task, cfg.task.eval_split)
    prompts = [task.messages(it) for it in items]
    base, tok = models.load(cfg.model, pipeline._validate(cfg, task, items, cfg.evaluate.max_new_tokens))
    resume = pipeline._partial(dataclasses.replace(cfg, method="mipo"), "evaluate")
    e = cfg.evaluate

    def scorer(p, r):
        return generate.logprobs(base, tok, p, r, batch_size=max(1, e.batch_size // 4), resume_dir=resume)

    per, responses = {}, {}
    greedy = e.temperature <= 0  # greedy decoding: the base model's answers do not depend on the seed
    for seed in seeds:
        for m in methods:
            key = f"{m}/seed{seed}"
            if key in failures:
                continue
            train_dir = root / m / f"seed{seed}" / "train"
            if m == "prompting":
                if greedy and seed != seeds[0]:  # same answers, same scores
                    responses[key], per[key] = responses[f"{m}/seed{seeds[0]}"], per[f"{m}/seed{seeds[0]}"]
                    continue
                else:
                    responses[key] = _respond(cfg, base, tok, prompts, seed, key, resume)
            elif (train_dir / "adapter").is_dir():
                from peft import PeftModel

                peft = PeftModel.from_pretrained(base, str(train_dir / "adapter")).eval()
                responses[key] = _respond(cfg, peft, tok, prompts, seed, key, resume)
                base = peft.unload()  # the base weights without the adapter's layers, for scoring and the next one
            elif (train_dir / "model").is_dir():
                trained, _ = models.load(cfg.model, str(train_dir / "model"))
                responses[key] = _respond(cfg, trained, tok, prompts, seed, key, resume)
                del trained
            else:
                failures[key] = f"{train_dir}: no trained model"
                continue
            # the scoring model and the InfoNCE draw are the same for every model: the root config's seed
            scored, _ = score_all(cfg, task, items, {key: responses[key]}, scorer, str(base.device))
            per[key] = scored[key]
    rows = []
    for i, (it, p) in enumerate(zip(items, prompts)):
        row = {"id": it.id, "prompt": p}
        for k in per:
            row[k] = {"response": responses[k][i],
                      "metrics": {a: v for a, v in per[k][i].items() if not a.startswith("_")}}
        rows.append(row)
    shutil.rmtree(resume, ignore_errors=True)
    return {"task": task, "items": items, "per": per, "responses": responses}, rows


def table(cfg: Config, methods: list[str], seeds: list[int], ev: dict) -> dict:
    """method x metric: mean over seeds, bootstrap CI over items (seed-averaged), paired Δ vs prompting."""
    task, per, responses, n = ev["task"], ev["per"], ev["responses"], len(ev["items"])
    b = cfg.evaluate.bootstrap
    keys = sorted({k for rows in per.values() for k in rows[0] if not k.startswith("_")}) if per else []
    keys.sort(key=lambda k: k != task.primary_metric)

    def item_means(m: str, k: str) -> list[float | None]:
        runs = [per[f"{m}/seed{s}"] for s in seeds if f"{m}/seed{s}" in per]
        return [mean_present(r[i].get(k) for r in runs) for i in range(n)]

    base = {k: item_means("prompting", k) for k in keys} if any(k.startswith("prompting/") for k in per) else None
    result = {"task": task.name, "n_items": n, "primary_metric": task.primary_metric, "seeds": seeds,
              "methods": {}, "bootstrap": {"resamples": b, "seed": cfg.seed, "level": 0.95}}
    for m in methods:
        done = [s for s in seeds if f"{m}/seed{s}" in per]
        if not done:
            continue
        entry = {"seeds_done": done, "metrics": {}}
        for k in keys:
            vals = item_means(m, k)
            row = {"mean": mean_present(vals), "ci": bootstrap_ci(vals, b, cfg.seed),
                   "per_seed": [mean_present(d.get(k) for d in per[f"{m}/seed{s}"]) for s in done]}
            if base is not None and m != "prompting":
                pairs = [(a, c) for a, c in zip(vals, base[k]) if a is not None and c is not None]
                row["delta"] = mean_present(a - c for a, c in pairs)
                row["delta_ci"] = paired_diff_ci([a for a, _ in pairs], [c for _, c in pairs], b, cfg.seed)
            entry["metrics"][k] = row
        bleu = [self_bleu4(responses[f"{m}/seed{s}"]) for s in done]
        entry["metrics"]["self_bleu4"] = {"mean": mean_present(bleu), "ci": None, "per_seed": bleu}
        result["methods"][m] = entry
    result["method_order"] = list(result["methods"])  # compare.json is written with sorted keys
    return result


def _fmt(v, ci=None) -> str:
    if v is None:
        return "n/a"
    s = f"{v:.4f}"
    return s + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")


def render(result: dict, failures: dict, timings: dict) -> str:
    from .report import LABELS

    pm = result["primary_metric"]
    order = result["method_order"]
    keys = [pm] + [k for k in result["methods"][order[0]]["metrics"] if k != pm] if order else []
    out = [f"# mipo compare: {result['task']}\n",
           f"{result['n_items']} held-out items; seeds {', '.join(map(str, result['seeds']))}. Each cell: mean over "
           f"seeds [95% bootstrap CI over items of the seed-averaged per-item values]. Δ = paired difference to "
           f"`prompting` (the base model) [95% CI]. self-BLEU-4 has no per-item values: mean over seeds.\n"]
    head = ["method", "seeds"] + [LABELS.get(k, k) for k in keys] + [f"Δ {LABELS.get(pm, pm)}"]
    out.append("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for m in order:
        entry = result["methods"][m]
        cells = [m, str(len(entry["seeds_done"]))]
        for k in keys:
            r = entry["metrics"].get(k, {})
            cells.append(_fmt(r.get("mean"), r.get("ci")))
        r = entry["metrics"].get(pm, {})
        cells.append(_fmt(r.get("delta"), r.get("delta_ci")) if "delta" in r else "—")
        out.append("| " + " | ".join(cells) + " |")
    out.append(f"\nPer seed, {LABELS.get(pm, pm)}:\n")
    for m in order:
        entry = result["methods"][m]
        vals = ", ".join(f"seed {s}: {_fmt(v)}" for s, v in zip(entry["seeds_done"], entry["metrics"][pm]["per_seed"]))
        out.append(f"- {m}: {vals}")
    if failures:
        out.append("\nFailed (not in the table):\n")
        out += [f"- {k}: {v}" for k, v in failures.items()]
    if timings:
        out.append("\nWall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    return "\n".join(out) + "\n\n![compare](compare.png)\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pm = result["primary_metric"]
    names = result["method_order"]
    means = [result["methods"][m]["metrics"][pm]["mean"] or 0.0 for m in names]
    cis = [result["methods"][m]["metrics"][pm]["ci"] for m in names]
    err = [[mu - (c[0] if c else mu) for mu, c in zip(means, cis)], [(c[1] if c else mu) - mu for mu, c in zip(means, cis)]]
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2, 3.6))
    ax.bar(names, means, yerr=err, capsize=4, color=["#9aa5b1" if m == "prompting" else "#2f6fde" for m in names])
    ax.set_ylabel(pm)
    ax.set_title(f"mipo compare: {result['task']} (n={result['n_items']}, seeds={len(result['seeds'])}; 95% CI)")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def compare(cfg: Config) -> Path:
    methods, seeds = parse_lists(cfg)
    root = Path(cfg.run_dir)
    t0 = time.perf_counter()
    failures = train_all(cfg, methods, seeds)
    t1 = time.perf_counter()
    ev, rows = evaluate_all(cfg, methods, seeds, failures)
    t2 = time.perf_counter()
    result = table(cfg, methods, seeds, ev)
    result["failures"] = failures
    timings = {"generate+train": t1 - t0, "evaluate": t2 - t1}
    write_jsonl(root / "compare_responses.jsonl", rows)
    write_json(root / "compare.json", result)
    plot(result, root / "compare.png")
    write_text(root / "compare.md", render(result, failures, timings))
    log.info("compare: table in %s, per-item responses in %s", root / "compare.md", root / "compare_responses.jsonl")
    return root / "compare.md"
