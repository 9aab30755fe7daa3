"""The reasoning effect study (bench/effect.py --study reasoning): does MIPO make the model pick the right choice
more often, on held-out sets it was not trained on, by measures that format cannot fake?

Training is `mipo compare`'s (mipo.compare.train_all: one sample set per seed, shared by the methods). Every model
is scored on each held-out set by mipo/evaluation (the code of `mipo evaluate`): by choice log-likelihood on raw text
(lm-evaluation-harness' acc, acc_norm), through the chat template, by PMI (acc_mutual_info), and, for sets named
"...+gen", by its generated answer (accuracy, parse rate). Outputs under <root>/heldout/<set>/: per_item.jsonl
(every model's per-item metrics and choice log-probs), table.md.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path
from statistics import fmean

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mipo.io import read_jsonl  # noqa: E402  (after the path: the bench runs from a checkout)

DEFAULT_HELDOUT = [f"arc_easy-validation=arc_easy:{ROOT.parent / 'shared/data/arc_easy'}:validation",
                   f"arc_challenge-test500=arc_challenge:{ROOT.parent / 'shared/data/arc_challenge'}:test:500"]
HEADLINE = ("accuracy_loglik_raw", "accuracy_loglik_raw_norm", "accuracy_pmi", "accuracy_loglik", "accuracy", "parsed")


def study(recipe: str, root: Path, flags: str, heldout: list[str] | None, seeds: str | None = None,
          table_only: bool = False, train: bool = True) -> str:
    """Train (unless `train` is off or `table_only`), score every trained model not yet scored on each held-out
    set, and return the tables. A model is scored once per set: later runs add the models trained since."""
    from mipo.compare import parse_lists, train_all
    from mipo.recipe import apply_overrides, load_recipe

    logging.basicConfig(level=logging.INFO, format="%(asctime)s mipo %(levelname)s %(message)s", datefmt="%H:%M:%S")
    cfg = load_recipe(recipe)
    overrides = dict(kv.split("=", 1) for kv in filter(None, flags.split(",")))
    cfg = dataclasses.replace(apply_overrides(cfg, overrides, "point"), run_dir=str(root))
    if seeds:
        cfg.compare.seeds = seeds
    methods, seeds = parse_lists(cfg)
    if train and not table_only:
        failures = train_all(cfg, methods, seeds)
        if failures:
            raise SystemExit(f"training failed: {failures}")
    trained = [(m, s) for s in seeds for m in methods if (root / m / f"seed{s}" / "stages" / "train.json").exists()]
    out = []
    for spec in heldout or DEFAULT_HELDOUT:
        name, _, where = spec.partition("=")
        task_name, data, split, *n = where.split(":")
        d = root / "heldout" / name
        if not table_only:
            evaluate_set(cfg, trained, task_name, data, split, int(n[0]) if n else None, name.endswith("+gen"), d)
        if (d / "per_item.jsonl").exists():
            text = render(name, read_jsonl(d / "per_item.jsonl"), methods, seeds)
            (d / "table.md").write_text(text)
            out.append(text)
    return "\n\n".join(out)


def share_base(first: Path, root: Path) -> None:
    """A later point of one sweep starts each held-out set's per_item.jsonl with the first point's base-model rows
    (same model, items and scoring settings: bench/effect.py shares only then), so the base is scored once per
    sweep, not once per point (~3.5 min a set on the 2-core CPU)."""
    from mipo.io import write_jsonl

    for src in first.glob("heldout/*/per_item.jsonl"):
        dst = root / "heldout" / src.parent.name / "per_item.jsonl"
        if not dst.exists():
            write_jsonl(dst, [{**r, "models": {"base": r["models"]["base"]}} for r in read_jsonl(src)])


def evaluate_set(cfg, trained: list[tuple[str, int]], task_name, data, split, n_eval: int | None, generated: bool,
                 out: Path) -> None:
    """The base and each trained (method, seed)'s per-item metrics on one held-out set (n_eval items drawn as the
    paper draws ARC's 500: pandas' sample with seed 42; None = all), added to out/per_item.jsonl (written
    atomically; models already there are kept, not scored again). generated: the whole `mipo evaluate` path
    (answers, parse rate, fluency, chat-template scoring); else only the harness' raw-text scoring and PMI, which
    cost a fraction of it (contexts of ~40 tokens, no decoding)."""
    from mipo import models
    from mipo.evaluation import Candidate, choice_logliks, evaluate_models
    from mipo.inference.adapters import trained_engine
    from mipo.inference.hf import HFEngine
    from mipo.io import write_jsonl
    from mipo.tasks import get_task

    # n_train too: a held-out set may be another task's train split (ARC-Challenge train, for a model trained on
    # ARC-Easy), which the recipe's task.n_train (240 prompts) must not cut; from a train split n is the first n
    ecfg = dataclasses.replace(cfg, task=dataclasses.replace(cfg.task, name=task_name, data=data, eval_split=split,
                                                             n_eval=n_eval, n_train=n_eval, eval_draw="random",
                                                             eval_seed=42))
    if not generated:  # short raw-text contexts: wider scoring batches (a quarter of evaluate.batch_size) pay on CPU
        ecfg = dataclasses.replace(ecfg, evaluate=dataclasses.replace(ecfg.evaluate, batch_size=256))
    task = get_task(task_name, ecfg.task)
    items = task.load(ecfg.task, split)
    root = Path(cfg.run_dir)
    old = read_jsonl(out / "per_item.jsonl") if (out / "per_item.jsonl").exists() else None
    if old and [r["id"] for r in old] != [it.id for it in items]:
        raise SystemExit(f"{out / 'per_item.jsonl'}: scored on other items than {task_name}:{data}:{split} now "
                         f"gives; move it aside to score this set afresh")
    done = set(old[0]["models"]) if old else set()
    candidates = [c for c in [Candidate("base", None, cfg.seed)] + [
        Candidate(f"{m}/seed{s}", root / m / f"seed{s}" / "train", s) for m, s in trained] if c.name not in done]
    if not candidates:
        return
    base = HFEngine(*models.load(cfg.model))
    resume = out / "partial"
    resume.mkdir(parents=True, exist_ok=True)
    if generated:
        _, per, _ = evaluate_models(ecfg, task, items, base, candidates, resume)
    else:  # log-likelihoods only: no response is sampled
        per = {}
        for c in candidates:
            with trained_engine(base, c.train_dir, lambda p: models.load(cfg.model, p)[0]) as engine:
                rows = [{} for _ in items]
                task.apply_logliks(items, rows, choice_logliks(ecfg, task, engine, items, resume,
                                                               kinds=("raw", "unconditional")))
            per[c.name] = rows
    write_jsonl(out / "per_item.jsonl", [
        {"id": it.id, "choice_chars": [len(t) for t in it.meta["texts"]],
         "models": {**(old[i]["models"] if old else {}), **{n: per[n][i] for n in per}}} for i, it in enumerate(items)])
    logging.getLogger("mipo").info("reasoning study: %s written (%s)", out / "per_item.jsonl", ", ".join(per))


def points(d: float, ci: list[float]) -> str:
    return f"{100 * d:+.1f} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def short_cell(after: list[float], before: list[float]) -> str:
    """Paired Δ in points with its Newcombe CI."""
    from mipo.evaluation.stats import newcombe_paired_ci

    return points(fmean(after) - fmean(before), newcombe_paired_ci(after, before))


def paired_cell(after: list[float], before: list[float]) -> str:
    from mipo.evaluation.stats import gained_lost

    gl = gained_lost(after, before)
    return f"{short_cell(after, before)} (+{gl['gained']}/−{gl['lost']}, p {gl['mcnemar_p']:.3f})"


def pooled(afters: list[list[float]], befores: list[list[float]]) -> tuple[float, list[float]]:
    """Over the seeds: each item's mean over the seeds of (after − before) — before is the base model, or each seed's
    own control — and its seeded percentile bootstrap CI."""
    from mipo.evaluation.stats import bootstrap_ci

    diffs = [fmean(a[i] - b[i] for a, b in zip(afters, befores)) for i in range(len(befores[0]))]
    return fmean(diffs), bootstrap_ci(diffs, 2000, 0)


def pooled_cell(afters: list[list[float]], before: list[float]) -> str:
    return points(*pooled(afters, [before] * len(afters)))


def render(name: str, rows: list[dict], methods: list[str], seeds: list[int]) -> str:
    models_ = list(rows[0]["models"])
    keys = [k for k in HEADLINE if k in rows[0]["models"]["base"]]
    col = {m: {k: [r["models"][m][k] for r in rows] for k in keys} for m in models_}
    out = [f"### {name} ({len(rows)} items)\n", "| model | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for m in models_:
        out.append(f"| {m} | " + " | ".join(f"{100 * fmean(col[m][k]):.1f}%" for k in keys) + " |")
    out.append("\nPaired Δ in points vs base [95% Newcombe CI] (items gained/lost, McNemar p); `vs sft-self` = the "
               "same seed's sft-self on the same pairs:\n")
    out.append("| model | " + " | ".join(f"Δ {k}" for k in keys[:3]) + " | Δ accuracy_loglik_raw vs sft-self |")
    out.append("|---" * 5 + "|")
    for m in models_[1:]:
        ref = m.replace(m.split("/")[0], "sft-self")
        vs = paired_cell(col[m]["accuracy_loglik_raw"], col[ref]["accuracy_loglik_raw"]) if (
            ref in col and ref != m) else "—"
        out.append(f"| {m} | " + " | ".join(paired_cell(col[m][k], col["base"][k]) for k in keys[:3]) + f" | {vs} |")
    for meth in methods:
        runs = [f"{meth}/seed{s}" for s in seeds if f"{meth}/seed{s}" in col]
        if len(runs) > 1:
            out.append(f"| {meth}, {len(runs)} seeds pooled (bootstrap) | " + " | ".join(
                pooled_cell([col[r][k] for r in runs], col["base"][k]) for k in keys[:3]) + " | |")
    fool = [k for k in ("words", "fluency", "rep4", "broken") if k in rows[0]["models"]["base"]]
    if fool:  # generated answers: what could move accuracy and parse rate without the answers getting better
        from mipo.evaluation.aggregate import paired

        out += ["\nBeside the generated answers, Δ vs base [95% paired CI]: words per answer, fluency (the base "
                "model's log-lik per token, nats), share of repeated 4-grams, broken answers (loops, non-text, empty):\n",
                "| model | " + " | ".join(f"Δ {k}" for k in fool) + " |", "|---" * (len(fool) + 1) + "|"]
        for m in models_[1:]:
            cells = []
            for k in fool:
                d, ci = paired([r["models"][m][k] for r in rows], [r["models"]["base"][k] for r in rows], 1000, 0)
                cells.append("n/a" if d is None else f"{d:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""))
            out.append(f"| {m} | " + " | ".join(cells) + " |")
    out.append("\n" + why(rows, models_))
    return "\n".join(out)


def sweep_table(root: Path) -> str:
    """One row per trained model of every point under root (a subdirectory with scored held-out sets, as
    `--point name:flags` makes them): what its pairs held (mipo.pair.diagnose's pairs_stats.json: chosen vs rejected
    answer right, parsed) beside its paired Δ vs base on each held-out set — can the pairs tell, before training,
    which setting will gain?"""
    scored_by_point = {p: {f.parent.name: read_jsonl(f) for f in p.glob("heldout/*/per_item.jsonl")}
                       for p in sorted(root.iterdir()) if p.is_dir()}
    scored_by_point = {p: sc for p, sc in scored_by_point.items() if sc}
    order = [spec.partition("=")[0] for spec in DEFAULT_HELDOUT]  # the study's sets first, in its order
    sets = sorted({s for sc in scored_by_point.values() for s in sc},
                  key=lambda s: (order.index(s) if s in order else len(order), s))
    head = ["point", "model", "pairs: right, chosen / rejected", "parsed, chosen / rejected"] + [
        f"{s}: Δ {k}" for s in sets for k in ("acc", "acc_norm", "PMI")]
    out = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for p, scored in scored_by_point.items():
        for m in sorted({m for rows in scored.values() for m in rows[0]["models"]} - {"base"}):
            stats_file = p / "samples" / f"pairs-seed{m.rsplit('seed', 1)[1]}" / "pairs_stats.json"
            st = json.loads(stats_file.read_text()) if stats_file.exists() else None
            row = [p.name, m] + ([f"{100 * st['chosen'][k]:.1f}% / {100 * st['rejected'][k]:.1f}%"
                                  for k in ("accuracy", "parsed")] if st else ["—", "—"])
            for s in sets:
                rows = scored.get(s)
                for k in ("accuracy_loglik_raw", "accuracy_loglik_raw_norm", "accuracy_pmi"):
                    if not rows or m not in rows[0]["models"]:
                        row.append("—")
                        continue
                    row.append(short_cell(*([r["models"][x][k] for r in rows] for x in (m, "base"))))
            out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


def outcomes(root: Path) -> dict:
    """Every scored model's per-item 0/1 outcomes under root: the study's own held-out sets and each sweep point's
    (named "<point>/<method>/seed<s>"; the base model is "base"), as bench/results/ keeps them, since runs/ does not
    outlive a machine and seeds scored in different sessions are pooled from the record.
    Shape: {set: {"ids": [...], "models": {name: {measure: "0110…"}}}}."""
    rec: dict = {}
    for d in [root] + sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(d.glob("heldout/*/per_item.jsonl")):
            rows = read_jsonl(f)
            add(rec, f.parent.name, [r["id"] for r in rows], {
                m if m == "base" or d == root else f"{d.name}/{m}": {
                    k: "".join(str(int(r["models"][m][k])) for r in rows) for k in HEADLINE if k in rows[0]["models"][m]}
                for m in rows[0]["models"]}, f)
    return rec


def add(rec: dict, name: str, ids: list, models_: dict, source) -> None:
    """Add one held-out set's models to a record. The same model scored on the same items gives the same bits in
    every session, so other items, or a name (the base's too) whose outcomes differ from the recorded ones, mean
    another model or scoring under one name: refused, naming the file."""
    s = rec.setdefault(name, {"ids": ids, "models": {}})
    if s["ids"] != ids:
        raise SystemExit(f"{source}: {name} was scored on other items than the record's")
    for m, v in models_.items():
        if s["models"].setdefault(m, v) != v:
            raise SystemExit(f"{source}: {name}: {m}'s outcomes differ from the record's (another model or another "
                             f"scoring under the same name)")


def record(root: Path, path: Path) -> dict:
    """Merge root's outcomes into the record at path (written atomically; created if absent) and return it."""
    from mipo.io import write_json

    rec = json.loads(path.read_text()) if path.exists() else {}
    for name, s in outcomes(root).items():
        add(rec, name, s["ids"], s["models"], root)
    write_json(path, rec)
    return rec


def goal(rec: dict, point: str) -> str:
    """Issue 27's test of one setting, read from recorded outcomes: mipo against the base model and against sft-self
    trained on the same pairs, per seed (paired Newcombe CI) and pooled over the seeds (each item's seed-mean
    difference, percentile bootstrap CI), on every held-out set. Met when, over at least 3 seeds, the pooled raw-text
    accuracy gain is above 0 (CI excluded) against both on every loglik-only set, and on the "+gen" sets (those
    with generated answers) generated accuracy and parse rate do not fall (pooled CI not wholly below 0)."""
    from mipo.evaluation.stats import newcombe_paired_ci

    pre = f"{point}/" if point else ""
    out, verdict = [], []  # verdict: (what was found, whether it meets the goal)
    for name, s in rec.items():
        ms = {m: {k: [int(c) for c in b] for k, b in v.items()} for m, v in s["models"].items()}
        seeds = sorted(int(m.rsplit("seed", 1)[1]) for m in ms if m.startswith(f"{pre}mipo/seed"))
        if not seeds or "base" not in ms:
            continue

        def get(method, seed, k):
            return ms["base"].get(k) if method == "base" else ms.get(f"{pre}{method}/seed{seed}", {}).get(k)

        head = ["Δ points [95% CI]"] + [f"seed {x}" for x in seeds] + ["pooled (seeds: bootstrap)"]
        out += [f"#### {name} ({len(s['ids'])} items), {pre or 'the study'}mipo\n", "| " + " | ".join(head) + " |",
                "|---" * len(head) + "|"]
        comparisons = [(k, "mipo", "base") for k in HEADLINE if get("mipo", seeds[0], k) is not None] + [
            ("accuracy_loglik_raw", "sft-self", "base"), ("accuracy_loglik_raw", "mipo", "sft-self")]
        for k, a, b in comparisons:
            both = {x: (get(a, x, k), get(b, x, k)) for x in seeds}
            both = {x: ab for x, ab in both.items() if None not in ab}
            cells = [short_cell(*both[x]) if x in both else "—" for x in seeds]
            d = ci = None
            if len(both) > 1:
                d, ci = pooled([ab[0] for ab in both.values()], [ab[1] for ab in both.values()])
            elif both:
                (after, before), = both.values()
                d, ci = fmean(after) - fmean(before), newcombe_paired_ci(after, before)
            cells.append("—" if d is None else f"{points(d, ci)} ({','.join(map(str, both))})")
            out.append(f"| {a} − {b}, {k} | " + " | ".join(cells) + " |")
            if k == "accuracy_loglik_raw" and a == "mipo" and not name.endswith("+gen"):  # +gen: answers judged
                verdict.append((f"{name}: mipo − {b} raw acc "
                                + ("—" if d is None else f"{points(d, ci)} over {len(both)} seeds"),
                                d is not None and len(both) >= 3 and ci[0] > 0))
            if k in ("accuracy", "parsed") and ci and ci[1] < 0:
                verdict.append((f"{name}: {k} (generated) falls {100 * d:+.1f}", False))
        out.append("")
    if not any(" raw acc " in text for text, _ in verdict):
        verdict.append(("no loglik-only held-out set scores this point's mipo", False))
    gen = any("accuracy" in v for s in rec.values() for m, v in s["models"].items() if m.startswith(f"{pre}mipo/"))
    met = gen and all(ok for _, ok in verdict)
    out.append(f"Goal ({pre or 'the study '}mipo): " + ("met" if met else "not met") + " — "
               + "; ".join(text + ("" if ok else " ✗") for text, ok in verdict)
               + ("" if gen else "; generated accuracy and parse rate not scored (a +gen held-out set adds them)"))
    return "\n".join(out)


def why(rows: list[dict], models_: list[str]) -> str:
    """What changed in the models' choice log-probs (raw text), against the base model's:
    - agrees with base PMI: the share of items whose likeliest choice is the one the base model's PMI rule picks
      (did training move the model towards scoring p(c | q) / p(c)?);
    - prior share: each choice's change in log p(c | q) (trained − base, centred over the item's choices)
      regressed on its centred change in the unconditional log p(c): the share of the change that does not depend
      on the question (1 = training only reshaped which answer strings are likely, whatever was asked);
    - Δ acc on close / far items: on the items whose base top-two margin is below / at least the median;
    - picks the longest choice, picks A/B/C/D: where the likeliest choice stands (gold: where the right one does)."""
    def argmax(v):
        return max(range(len(v)), key=v.__getitem__)

    base = [r["models"]["base"]["_logliks"] for r in rows]
    pmi_pick = [argmax([c - u for c, u in zip(b["raw"], b["unconditional"])]) for b in base]
    margins = [sorted(b["raw"])[-1] - sorted(b["raw"])[-2] for b in base]
    median = sorted(margins)[len(margins) // 2]
    longest = [argmax(r["choice_chars"]) for r in rows]

    def spread(picks: list[int]) -> str:
        return " ".join(f"{'ABCDE'[j]} {100 * fmean(float(p == j) for p in picks):.0f}%" for j in range(4))

    gold = [b["gold"] for b in base]
    out = ["Where the change is (raw-text log-likelihood; `bench/effect_reasoning.py: why`):\n",
           "| model | agrees with base PMI | prior share of the change | Δ acc, close items | Δ acc, far items "
           "| picks the longest choice | picks A B C D |", "|---" * 7 + "|",
           f"| (gold) | {100 * fmean(float(g == p) for g, p in zip(gold, pmi_pick)):.1f}% | | | | "
           f"{100 * fmean(float(g == k) for g, k in zip(gold, longest)):.1f}% | {spread(gold)} |"]
    for m in models_:
        ll = [r["models"][m]["_logliks"] for r in rows]
        picks = [argmax(x["raw"]) for x in ll]
        num = den = 0.0
        for x, b in zip(ll, base):
            dc = [t - s for t, s in zip(x["raw"], b["raw"])]
            du = [t - s for t, s in zip(x["unconditional"], b["unconditional"])]
            mc, mu = fmean(dc), fmean(du)
            num += sum((a - mc) * (u - mu) for a, u in zip(dc, du))
            den += sum((u - mu) ** 2 for u in du)
        share = f"{num / den:.2f}" if den else "—"
        acc = [r["models"][m]["accuracy_loglik_raw"] - r["models"]["base"]["accuracy_loglik_raw"] for r in rows]
        close = fmean(a for a, g in zip(acc, margins) if g < median)
        far = fmean(a for a, g in zip(acc, margins) if g >= median)
        out.append(f"| {m} | {100 * fmean(float(p == q) for p, q in zip(picks, pmi_pick)):.1f}% | {share} | "
                   f"{100 * close:+.1f} | {100 * far:+.1f} | "
                   f"{100 * fmean(float(p == k) for p, k in zip(picks, longest)):.1f}% | {spread(picks)} |")
    return "\n".join(out)
