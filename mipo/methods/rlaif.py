"""rlaif: the base model judges its own samples (Self-Rewarding, Yuan et al. 2024); best vs worst form the pair.

Each prompt gets `generate.rlaif_samples` responses (sample s drawn with seed + 1000 s, so sample 0 is the very
response MIPO uses as its chosen one). The same model scores each 1-5 with an additive rubric:
- in process (engine hf): the expected score Σ d·p(d) / Σ p(d) over d = 1..5 from the model's next-token
  distribution after "Score:" (probability-weighted rubric scores, as in G-Eval). It always yields a score —
  small models rarely write the requested format (the embedded 135M model: 0 of 32 replies parsed) — and costs
  one forward pass per judgement instead of a generation;
- through a server (engine openai / vllm): the model writes a justification and "Score: N", greedy; a reply
  without a score is asked again once with a format reminder, then left unscored.
A prompt gives a pair when at least two of its samples are scored and the scores differ: chosen = the highest,
rejected = the lowest (first by sample index on ties). Both are samples of the true prompt x — the negative is a worse answer, not a less
prompt-specific one, which is what separates this baseline from MIPO.
"""
from __future__ import annotations

import logging

import torch

from ..io import BatchLog, MipoError
from ..judge import REMINDER, parse_score

log = logging.getLogger("mipo")

RUBRIC = """Review the user's request and the response below, then score the response from 1 to 5 with this \
additive rubric:
- Add 1 point if the response is relevant and gives some information related to the request.
- Add a second point if it addresses a substantial part of the request.
- Add a third point if it answers the basic elements of the request in a useful way.
- Add a fourth point if it addresses the request directly and completely and fits what the user said about \
themselves.
- Add a fifth point if it is tailored to the user and flawless, without extraneous information.

[Request]
{request}

[Response]
{response}

Give a one-sentence justification, then end with a line of the form "Score: N"."""


def request_text(messages: list[dict]) -> str:
    """The last user turn: the request with any user context (few-shot turns before it are left out)."""
    return [m["content"] for m in messages if m["role"] == "user"][-1]


@torch.inference_mode()
def expected_scores(model, tok, prompts: list[list[dict]], batch_size: int, resume_dir=None) -> list[float]:
    """Σ d·p(d) / Σ p(d), d = 1..5, p = the model's next-token probabilities after the chat prompt + "Score:"."""
    from ..generate import prompt_ids, run_batches, weights_id

    options = [tok(f"Score: {d}", add_special_tokens=False)["input_ids"] for d in range(1, 6)]
    k = 0
    while all(len(o) > k + 1 and o[k] == options[0][k] for o in options):
        k += 1
    if any(len(o) != k + 1 for o in options):
        raise MipoError(f"rlaif: the tokenizer does not end 'Score: 1'..'Score: 5' with one digit token each "
                        f"({options}); use a server engine, which parses written scores")
    digits = torch.tensor([o[k] for o in options])
    seqs = [ids + options[0][:k] for ids in prompt_ids(tok, prompts)]
    log_ = BatchLog(resume_dir, {"op": "rubric_scores", "seqs": seqs, "bs": batch_size, **weights_id(model)})

    def batch(b: int, idx: list[int]) -> list[float]:
        width = max(len(seqs[i]) for i in idx)
        ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, i in enumerate(idx):  # left padding: the last position is every row's next token
            ids[r, width - len(seqs[i]):] = torch.tensor(seqs[i])
            mask[r, width - len(seqs[i]):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                       position_ids=pos.to(model.device), logits_to_keep=1).logits[:, -1].float()
        p = logits[:, digits.to(logits.device)].softmax(-1)
        return (p @ torch.arange(1.0, 6.0, device=p.device)).tolist()

    return run_batches([len(s) for s in seqs], batch_size, log_, batch)


def build_pairs(task, items, cfg, sample_fn, score_fn=None) -> tuple[list[dict], dict]:
    """`sample_fn(prompts, seed, desc, temperature=, top_p=, max_new_tokens=)`; `score_fn(judge prompts) ->
    scores` (in process) or None (written scores, parsed); returns (pairs, stats)."""
    g = cfg.generate
    n = g.rlaif_samples
    if n < 2:
        raise MipoError(f"generate.rlaif_samples: rlaif needs at least 2 samples per prompt, got {n}")
    prompts = [task.messages(it) for it in items]
    samples = [sample_fn(prompts, cfg.seed + 1000 * s, f"rlaif samples {s + 1}/{n}") for s in range(n)]
    flat = [(i, s) for s in range(n) for i in range(len(items))]
    asks = [RUBRIC.format(request=request_text(prompts[i]), response=samples[s][i]) for i, s in flat]

    def judge(texts, attempt):
        return sample_fn([[{"role": "user", "content": t}] for t in texts], cfg.seed + 77 + attempt,
                         "rlaif self-judge" + (" retry" if attempt else ""), temperature=0.0, top_p=1.0,
                         max_new_tokens=g.rlaif_judge_tokens)

    again = []
    if score_fn is not None:
        scores = score_fn([[{"role": "user", "content": t}] for t in asks])
    else:
        scores = [parse_score(r) for r in judge(asks, 0)]
        again = [k for k, v in enumerate(scores) if v is None]
        if again:
            for k, r in zip(again, judge([asks[k] + REMINDER["score"] for k in again], 1)):
                scores[k] = parse_score(r)
    by_item: dict[int, list[tuple[int, int]]] = {}
    for (i, s), v in zip(flat, scores):
        if v is not None:
            by_item.setdefault(i, []).append((v, s))
    rows, tied = [], 0
    for i, it in enumerate(items):
        scored = by_item.get(i, [])
        if len(scored) < 2:
            continue
        best = max(scored, key=lambda t: (t[0], -t[1]))
        worst = min(scored, key=lambda t: (t[0], t[1]))
        if best[0] == worst[0]:
            tied += 1
            continue
        rows.append({
            "prompt": prompts[i],
            "chosen": [{"role": "assistant", "content": samples[best[1]][i]}],
            "rejected": [{"role": "assistant", "content": samples[worst[1]][i]}],
            "negative_prompt": prompts[i],  # both responses come from x itself
            "meta": {"prompt_id": it.id, "negative_from": it.id, "strategy": "rlaif", "scores": [scores[s * len(items) + i] for s in range(n)],
                     "chosen_sample": best[1], "rejected_sample": worst[1], "task": task.name, "seed": cfg.seed,
                     "temperature": g.temperature, "top_p": g.top_p, "max_new_tokens": g.max_new_tokens,
                     "model": cfg.model.name},
        })
    stats = {"rlaif_scoring": "expected score from next-token probabilities" if score_fn else "written, parsed",
             "rlaif_judged": len(asks), "rlaif_unparsed": sum(v is None for v in scores),
             "rlaif_retried": len(again), "rlaif_tied_prompts": tied, "rlaif_prompts_without_pair": len(items) - len(rows)}
    log.info("rlaif: %d pairs from %d prompts; %d of %d self-judgements unparsable after a retry; %d prompts tied",
             len(rows), len(items), stats["rlaif_unparsed"], len(asks), tied)
    if not rows:
        raise MipoError(f"rlaif: no pair: the base model's self-scores never separate two samples of a prompt "
                        f"({stats['rlaif_unparsed']} of {len(asks)} judgements unparsable, {tied} prompts tied)")
    return rows, stats
