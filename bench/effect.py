"""The effect study: does MIPO make the embedded model better for the user, by measures a person would trust?

Personalization (--study personalization, the default). Each point is `mipo run` of one recipe with some flags changed, in its own run directory under --root (a finished
stage is reused, so a sweep can stop and go on in a later session). The table compares base and trained on the
held-out items by what repeating the context back or breaking down cannot raise: violations of what the user's
context rules out, tailored cues not taken from the context, broken responses, the base model's per-token
log-likelihood of the response (fluency), response length, and cond. MI per token beside them.

    .venv/bin/python bench/effect.py --point demo                     # the recipe as it is
    .venv/bin/python bench/effect.py --point lr5e-4:train.learning_rate=5e-4 --point b0.5:train.beta=0.5
    .venv/bin/python bench/effect.py --table                          # the table of every finished point

Reasoning (--study reasoning): `compare.methods` (mipo, sft-self) x `compare.seeds` trained on the recipe's task
(recipes/arc.yaml: 240 ARC-Easy train prompts), as `mipo compare` trains them (one sample set per seed, shared by the
methods), then the base and every trained model scored on each held-out set of --heldout (name=task:data:split;
generated answers too where the name ends in "+gen") by choice log-likelihood in lm-evaluation-harness' raw-text
convention, through the chat template and by PMI: paired Δ with Newcombe CIs, items gained / lost and McNemar's p per
seed and over the seeds, and what changed in the trained models' choice log-probs (--why).

    .venv/bin/python bench/effect.py --study reasoning --root runs/arc            # train, evaluate, tables
    .venv/bin/python bench/effect.py --study reasoning --root runs/arc --point lr1e-4:train.learning_rate=1e-4
    .venv/bin/python bench/effect.py --study reasoning --root runs/arc --sweep     # one line per point's model
    .venv/bin/python bench/effect.py --study reasoning --root runs/arc --record bench/results/arc.json --goal lr1e-4
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLUMNS = [("violation", "violations ↓"), ("cue", "tailored cues ↑"), ("broken", "broken ↓"),
           ("fluency", "fluency, nats/token ↑"), ("words", "words"), ("parrot", "context repeated"),
           ("cond_mi_per_token", "cond. MI/token ↑")]


def run_point(recipe: str, root: Path, spec: str) -> Path:
    from mipo.cli import main

    name, _, flags = spec.partition(":")
    argv = ["run", "--config", recipe, "--run-dir", str(root / name)]
    for kv in filter(None, flags.split(",")):
        key, _, value = kv.partition("=")
        argv += [f"--{key}", value]
    t0 = time.perf_counter()
    if main(argv) != 0:
        raise SystemExit(f"point {name} failed: {' '.join(argv)}")
    (root / name / "effect_point.json").write_text(json.dumps({"argv": argv, "wall_s": time.perf_counter() - t0}))
    return root / name


def cell(rows: list[dict], k: str) -> str:
    """trained − base on metric k over the items, with its paired 95% CI computed now from the per-item values
    (Newcombe for 0/1 metrics, else the seeded bootstrap), so points evaluated by older code read the same way."""
    from mipo.evaluation.aggregate import paired

    d, ci = paired([r["trained_metrics"].get(k) for r in rows], [r["base_metrics"].get(k) for r in rows], 1000, 0)
    if d is None:
        return "n/a"
    return f"{d:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else f"{d:+.3f}"


def table(root: Path) -> str:
    from mipo.behaviour import distinct_n

    head = (["point", "steps", "final loss", "reward margin", "identical to base"] + [f"Δ {t}" for _, t in COLUMNS]
            + ["distinct-2 base → trained"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base_row = None
    for d in sorted(p for p in root.iterdir() if (p / "metrics.json").exists()):
        m = json.loads((d / "metrics.json").read_text())
        rows = [json.loads(line) for line in (d / "eval" / "responses.jsonl").read_text().splitlines()]
        summary = d / "train" / "train_summary.json"  # none for pmi-decode: nothing is trained
        s = json.loads(summary.read_text()) if summary.exists() else {"steps": 0, "final_loss": None, "log_history": []}
        margins = [h["rewards/margins"] for h in s["log_history"] if "rewards/margins" in h]
        same = sum(r["base"] == r["trained"] for r in rows)
        d2 = [distinct_n([r[name] for r in rows], 2) for name in ("base", "trained")]
        loss = "—" if s["final_loss"] is None else f"{s['final_loss']:.3f}"
        lines.append("| " + " | ".join([d.name, str(s["steps"]), loss,
                                         f"{margins[-1]:.3f}" if margins else "n/a", f"{same}/{len(rows)}"]
                                        + [cell(rows, k) for k, _ in COLUMNS] + [f"{d2[0]:.2f} → {d2[1]:.2f}"]) + " |")
        base_row = base_row or m["models"]["base"]
    if base_row:
        lines.append("\nbase model: " + ", ".join(f"{t} {base_row[k]:.3f}" for k, t in COLUMNS if base_row.get(k) is not None))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", choices=("personalization", "reasoning"), default="personalization")
    ap.add_argument("--recipe", help="default: recipes/demo.yaml (personalization), recipes/arc.yaml (reasoning)")
    ap.add_argument("--root", default=None, help="default: runs/effect (personalization), runs/arc (reasoning)")
    ap.add_argument("--point", action="append", default=[], help="name[:section.field=value,...]")
    ap.add_argument("--table", action="store_true", help="print the table of every finished point")
    ap.add_argument("--seeds", help="reasoning: the seeds to train and score (default: the recipe's compare.seeds)")
    ap.add_argument("--sweep", action="store_true",
                    help="reasoning: one row per trained model of every point under --root: its pairs' contrast "
                         "beside its Δ vs base on each held-out set (reads the files; trains and scores nothing)")
    ap.add_argument("--record", metavar="FILE",
                    help="reasoning: add every scored model's per-item 0/1 outcomes under --root to FILE (JSON, "
                         "created if absent; bench/results/arc.json is the project's), refusing a model or base "
                         "whose outcomes differ from the recorded ones; trains and scores nothing")
    ap.add_argument("--goal", nargs="?", const="", metavar="POINT",
                    help="reasoning: issue 27's test of one point's mipo (no POINT: the study's own) against base "
                         "and sft-self, per seed and pooled, read from --record's FILE (else from --root)")
    ap.add_argument("--no-train", action="store_true", help="reasoning: score only the models already trained")
    ap.add_argument("--heldout", action="append", default=None,
                    help="reasoning: name=task:data:split[:n] (default: ARC-Easy validation and ARC-Challenge "
                         "test500 from ../shared/data, raw-text and PMI scoring; a name ending in +gen adds "
                         "generated answers)")
    args = ap.parse_args()
    if args.study == "reasoning":
        from effect_reasoning import share_base, study

        recipe = args.recipe or str(ROOT / "recipes" / "arc.yaml")
        root = Path(args.root or ROOT / "runs" / "arc")
        if args.record or args.goal is not None:
            from effect_reasoning import goal, outcomes, record

            rec = record(root, Path(args.record)) if args.record else outcomes(root)
            if args.record:
                sizes = ", ".join(f"{name}: {len(s['models'])} models" for name, s in rec.items())
                print(f"record: {args.record} ({sizes})")
            if args.goal is not None:
                print(goal(rec, args.goal))
            return
        if args.sweep:
            from effect_reasoning import sweep_table

            print(sweep_table(root))
            return
        first = None
        for spec in args.point or [""]:
            name, _, flags = spec.partition(":")
            here = root / name if name else root
            if first and not args.table and not any(kv.startswith(("model.", "evaluate.")) for kv in flags.split(",")):
                share_base(first, here)  # the base model is the same: score it once per sweep
            print(study(recipe, here, flags, args.heldout, args.seeds, args.table, train=not args.no_train),
                  flush=True)
            first = first or here
        return
    recipe = args.recipe or str(ROOT / "recipes" / "demo.yaml")
    root = Path(args.root or ROOT / "runs" / "effect")
    for spec in args.point:
        print("point done:", run_point(recipe, root, spec), flush=True)
    print(table(root))


if __name__ == "__main__":
    main()
