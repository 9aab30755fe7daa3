"""MIPO's baselines (mipo/methods/) on the tiny model: losses against their formulas, each method end to end."""
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from mipo import ModelArgs, models
from mipo.cli import main
from mipo.config import Config
from mipo.io import read_jsonl
from mipo.methods.contrastive import contrastive_loss, make_trainer as contrastive_trainer

from .conftest import FIXTURES, check_run_dir
from .test_pipeline import flags

ROWS = [  # (x, y+, x', y-)
    ("About me: I am vegan.\n\nSuggest a quick dinner.", "Lentil soup with rice.", "Suggest a quick dinner.", "Steak."),
    ("Explain inflation.", "Prices rise over time.", "What is 3 + 4?", "7"),
    ("What is 3 + 4?", "3 + 4 = 7 #### 7", "Explain inflation.", "Money loses value."),
]


def write_rows(path):
    with path.open("w") as f:
        for x, c, xn, r in ROWS:
            f.write(json.dumps({"prompt": [{"role": "user", "content": x}],
                                "chosen": [{"role": "assistant", "content": c}],
                                "rejected": [{"role": "assistant", "content": r}],
                                "negative_prompt": [{"role": "user", "content": xn}], "meta": {}}) + "\n")
    return path


def test_contrastive_loss_matches_the_two_way_softmax_by_hand():
    L = torch.tensor([[[-3.0, -5.0], [-9.0, -4.0]], [[-2.0, -1.0], [-6.0, -7.5]]])  # [pair, response, prompt]
    row, col = [], []
    for (a, b), (c, d) in L.tolist():  # a = L(y+|x), b = L(y+|x'), c = L(y-|x), d = L(y-|x')
        lsig = lambda z: -torch.nn.functional.softplus(-torch.tensor(z))  # log σ(z)
        row += [-lsig(a - b), -lsig(d - c)]  # each response: its own prompt against the other prompt
        col += [-lsig(a - c), -lsig(d - b)]  # each prompt: its own response against the other response
    row, col = torch.stack(row).mean(), torch.stack(col).mean()
    infonce, stats = contrastive_loss(L, "infonce")
    sami, _ = contrastive_loss(L, "sami")
    assert torch.allclose(infonce, row) and torch.allclose(sami, 0.5 * (row + col))
    assert stats["pmi_margin"] == pytest.approx(((-3 + 5) - (-9 + 4) + (-2 + 1) - (-6 + 7.5)) / 2)
    assert stats["row_accuracy"] == 0.5  # pair 1: both diagonals win; pair 2: y+ prefers x', y- prefers x'


@pytest.mark.parametrize("kind", ["infonce", "sami"])
def test_contrastive_trainer_loss_is_the_formula_on_a_real_batch(tiny_model_dir, tmp_path, kind):
    model, tok = models.load(ModelArgs(name=str(tiny_model_dir), dtype="float32"))  # by hand to 1e-4: fp32
    cfg = Config(seed=0, method=kind)
    cfg.train.lora, cfg.train.batch_size = False, 3
    trainer = contrastive_trainer(cfg, model, tok, write_rows(tmp_path / "p.jsonl"), str(tmp_path / "o"))
    assert trainer.ref_model is None  # no second copy of the model, even in full fine-tuning
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 12  # [x y+ | x y- | x' y+ | x' y-] for 3 pairs
    order = [r[0] for r in ROWS]
    # the x' block really holds x' followed by the same responses (the dataloader may shuffle pairs)
    for k in range(3):
        x_text = tok.decode(batch["input_ids"][k][batch["attention_mask"][k].bool()])
        xn_text = tok.decode(batch["input_ids"][6 + k][batch["attention_mask"][6 + k].bool()])
        i = next(j for j, x in enumerate(order) if x in x_text)
        assert ROWS[i][2] in xn_text and ROWS[i][1] in xn_text and ROWS[i][1] in x_text
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch).item()
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logp = logits[:, :-1].log_softmax(-1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
        s = (logp * batch["completion_mask"][:, 1:]).sum(-1)
    a, c, b, d = s.view(4, 3)  # L(y+|x), L(y-|x), L(y+|x'), L(y-|x') per pair
    row = torch.cat([-F.logsigmoid(a - b), -F.logsigmoid(d - c)]).mean()
    col = torch.cat([-F.logsigmoid(a - c), -F.logsigmoid(d - b)]).mean()
    want = row if kind == "infonce" else 0.5 * (row + col)
    assert abs(loss - want.item()) < 1e-4


def test_contrastive_tokens_follow_the_chat_template_and_truncation_is_per_pair(tiny):
    from mipo.methods.contrastive import Collator, tokenize_pair

    model, tok = tiny
    x, c, xn, r = ROWS[0]
    row = {"prompt": [{"role": "user", "content": x}], "chosen": [{"role": "assistant", "content": c}],
           "rejected": [{"role": "assistant", "content": r}], "negative_prompt": [{"role": "user", "content": xn}]}
    e = tokenize_pair(tok, row)
    render = lambda m, **kw: tok.apply_chat_template(m, tokenize=True, return_dict=False, **kw)
    # prompt = chat prompt with the generation prompt; prompt + response = the rendered conversation
    assert e["prompt_ids"] == render(row["prompt"], add_generation_prompt=True)
    assert e["negative_prompt_ids"] == render(row["negative_prompt"], add_generation_prompt=True)
    assert e["prompt_ids"] + e["chosen_ids"] == render(row["prompt"] + row["chosen"])
    assert tok.decode(e["rejected_ids"]) == r + "<|im_end|>\n"  # the response ends the assistant turn

    full = Collator(tok.pad_token_id, None)([e])
    assert full["input_ids"].shape[0] == 4 and full["completion_mask"].sum(1).tolist() == [
        len(e["chosen_ids"]), len(e["rejected_ids"]), len(e["chosen_ids"]), len(e["rejected_ids"])]
    n = 12  # shorter than every prompt + response: the prompts lose their start, the responses their end
    cut = Collator(tok.pad_token_id, n)([e])
    assert cut["attention_mask"].sum(1).max() <= n
    for k, (p, y) in enumerate([("prompt_ids", "chosen_ids"), ("prompt_ids", "rejected_ids"),
                                ("negative_prompt_ids", "chosen_ids"), ("negative_prompt_ids", "rejected_ids")]):
        ids = cut["input_ids"][k][cut["attention_mask"][k].bool()].tolist()
        resp = ids[len(ids) - int(cut["completion_mask"][k].sum()):]
        assert e[p][-len(ids[:len(ids) - len(resp)]):] == ids[:len(ids) - len(resp)]  # the prompt's end
        assert e[y][:len(resp)] == resp  # the response's start
    # each response is cut alike under x and x', each prompt alike before y+ and y-
    cm = cut["completion_mask"].sum(1).tolist()
    assert cm[0] == cm[2] and cm[1] == cm[3]
    pm = (cut["attention_mask"] - cut["completion_mask"]).sum(1).tolist()
    assert pm[0] == pm[1] and pm[2] == pm[3]


def test_contrastive_lora_training_moves_the_adapter_and_logs_the_diagnostics(tiny_model_dir, tmp_path):
    model, tok = models.load(ModelArgs(name=str(tiny_model_dir)))
    cfg = Config(seed=0, method="sami")
    cfg.train.lora, cfg.train.batch_size, cfg.train.learning_rate = True, 1, 1e-2
    trainer = contrastive_trainer(cfg, model, tok, write_rows(tmp_path / "p.jsonl"), str(tmp_path / "o"))
    assert trainer.ref_model is None
    trainer.train()
    assert trainer.state.global_step == 3  # 3 pairs, 1 per step
    logged = [h for h in trainer.state.log_history if "contrastive/row_ce" in h]
    assert len(logged) == 3 and all(k in logged[0] for k in ("loss", "contrastive/col_ce", "contrastive/pmi_margin",
                                                              "contrastive/row_accuracy"))
    assert all(torch.isfinite(torch.tensor(h["contrastive/row_ce"])) for h in logged)
    trainer.save_model(str(tmp_path / "adapter"))  # a PEFT adapter directory
    assert (tmp_path / "adapter" / "adapter_config.json").exists() and lora_b_changed(tmp_path / "adapter")


def lora_b_changed(adapter_dir) -> bool:
    w = load_file(adapter_dir / "adapter_model.safetensors")
    bs = [v for k, v in w.items() if "lora_B" in k]
    return bool(bs) and all(v.abs().sum() > 0 for v in bs)


PERSONALIZATION = ("--task.data", str(FIXTURES / "personalization.jsonl"))


@pytest.mark.parametrize("method", ["sft-self", "infonce", "sami", "mipo-filtered"])
def test_pair_methods_train_and_evaluate(tiny_model_dir, tmp_path, method):
    run_dir = tmp_path / method
    extra = ("--train.filter_margin=-1e9",) if method == "mipo-filtered" else ()
    assert main(["run", *flags(tiny_model_dir, run_dir, *PERSONALIZATION, "--method", method, *extra)]) == 0
    metrics = check_run_dir(run_dir, n_pairs=6)
    assert lora_b_changed(run_dir / "train" / "adapter")
    assert metrics["train"]["steps"] == 3
    if method == "mipo-filtered":
        f = json.loads((run_dir / "train" / "filter.json").read_text())
        assert f["pairs"] == 6 and f["kept"] + f["dropped"] == 6 and len(f["margins"]) == 6


def test_mipo_filtered_drops_pairs_below_the_margin(tiny_model_dir, tmp_path):
    from .conftest import logprobs
    from mipo.pair import pmi_margins

    run_dir = tmp_path / "f"
    assert main(["run", *flags(tiny_model_dir, run_dir, *PERSONALIZATION, "--method", "mipo-filtered")]) == 0
    f = json.loads((run_dir / "train" / "filter.json").read_text())
    pairs = read_jsonl(run_dir / "pairs.jsonl")
    model, tok = models.load(ModelArgs(name=str(tiny_model_dir)))
    by_hand = []
    for p in pairs:  # PMI(y) = log p(y|x) - log p(y|x'); margin = PMI(chosen) - PMI(rejected)
        y_c, y_r = p["chosen"][0]["content"], p["rejected"][0]["content"]
        lp = logprobs(model, tok, [p["prompt"], p["negative_prompt"], p["prompt"], p["negative_prompt"]],
                      [y_c, y_c, y_r, y_r])
        by_hand.append((lp[0] - lp[1]) - (lp[2] - lp[3]))
    assert f["margins"] == pytest.approx(by_hand, abs=1e-3)
    assert pmi_margins(pairs, lambda p, r: logprobs(model, tok, p, r))[0]["margin"] == pytest.approx(by_hand[0], abs=1e-3)
    kept = read_jsonl(run_dir / "train" / "pairs.filtered.jsonl")
    assert len(kept) == sum(m > 0 for m in by_hand) == f["kept"]


def test_rlaif_pairs_best_against_worst(tiny_model_dir, tmp_path):
    from mipo.methods.rlaif import build_pairs
    from mipo.tasks import get_task

    cfg = Config(seed=0, method="rlaif")
    cfg.task.data = str(FIXTURES / "personalization.jsonl")
    task = get_task("personalization", cfg.task)
    items = task.load(cfg.task, "train")
    replies = {}

    def sample_fn(prompts, seed, desc, sampling=None):
        if "judge" not in desc:  # sample s of prompt i: "s<seed>-<i>"
            return [f"answer {seed} {i}" for i in range(len(prompts))]
        # the judge: a deterministic score from the response's seed, one unparsable reply, retried once
        out = []
        for p in prompts:
            text = p[0]["content"]
            seed_of = int(text.split("[Response]\n")[1].split()[1])
            replies[seed_of] = replies.get(seed_of, 0) + 1
            out.append("no score here" if (seed_of == 1000 and "retry" not in desc) else f"Fine. Score: {1 + seed_of // 1000}")
        return out

    cfg.generate.rlaif_samples = 3
    rows, stats = build_pairs(task, items, cfg, sample_fn)
    assert len(rows) == len(items) and stats["rlaif_retried"] == len(items) and stats["rlaif_unparsed"] == 0
    for r in rows:  # scores 1, 2, 3 for samples 0, 1, 2: best = sample 2, worst = sample 0
        assert r["chosen"][0]["content"].startswith("answer 2000") and r["rejected"][0]["content"].startswith("answer 0 ")
        assert r["meta"]["scores"] == [1, 2, 3] and r["negative_prompt"] == r["prompt"]


def test_rlaif_in_process_scores_are_expected_digits(tiny_model_dir, tmp_path, tiny_fp32):
    from mipo.inference.hf import HFEngine, prompt_ids
    from mipo.methods.rlaif import expected_scores

    model, tok = tiny_fp32
    prompts = [[{"role": "user", "content": t}] for t in ("Rate this. Short.", "A much longer request to rate, please.")]
    got = expected_scores(HFEngine(model, tok), prompts, batch_size=2)  # one left-padded batch
    opts = [tok(f"Score: {d}", add_special_tokens=False)["input_ids"] for d in range(1, 6)]
    for p, g in zip(prompts, got):  # by hand: one unpadded sequence, the 5 digit tokens after "Score:"
        ids = torch.tensor([prompt_ids(tok, [p])[0] + opts[0][:-1]], device=model.device)
        with torch.no_grad():
            probs = model(input_ids=ids).logits[0, -1][[o[-1] for o in opts]].softmax(-1)
        assert g == pytest.approx(sum((d + 1) * probs[d].item() for d in range(5)), abs=1e-4) and 1 <= g <= 5


def test_rlaif_and_prompting_and_iterative_run(tiny_model_dir, tmp_path):
    run_dir = tmp_path / "r"
    assert main(["run", *flags(tiny_model_dir, run_dir, *PERSONALIZATION, "--method", "rlaif")]) == 0
    check_run_dir(run_dir, n_pairs=6)
    for p in read_jsonl(run_dir / "pairs.jsonl"):  # chosen = the best-scored of 4 samples, rejected the worst
        sc = p["meta"]["scores"]
        assert len(sc) == 4 and sc[p["meta"]["chosen_sample"]] == max(sc) and sc[p["meta"]["rejected_sample"]] == min(sc)
    stamp = json.loads((run_dir / "stages" / "generate.json").read_text())
    assert stamp["rlaif_judged"] == 24 and stamp["rlaif_unparsed"] == 0
    # prompting: nothing trained, the base model evaluated
    assert main(["run", *flags(tiny_model_dir, tmp_path / "p", *PERSONALIZATION, "--method", "prompting")]) == 0
    m = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert set(m["models"]) == {"base"} and not (tmp_path / "p" / "train").exists()
    # two rounds: round 2 samples from the round-1 model; the final model differs from round 1's
    run_dir = tmp_path / "it"
    assert main(["run", *flags(tiny_model_dir, run_dir, *PERSONALIZATION, "--method", "mipo-iterative")]) == 0
    check_run_dir(run_dir, n_pairs=6)
    assert len(read_jsonl(run_dir / "train" / "round2" / "pairs.jsonl")) == 6
    s = json.loads((run_dir / "train" / "train_summary.json").read_text())
    assert [r["round"] for r in s["rounds"]] == [1, 2] and s["steps"] == 6
    r1 = load_file(run_dir / "train" / "round1" / "model" / "model.safetensors")
    r2 = load_file(run_dir / "train" / "model" / "model.safetensors")
    base = load_file(tiny_model_dir / "model.safetensors")
    key = next(k for k in r1 if "q_proj" in k)
    assert not torch.equal(r1[key], base[key]) and not torch.equal(r2[key], r1[key])


def test_compare_table_two_seeds(tiny_model_dir, tmp_path, capsys):
    run_dir = tmp_path / "cmp"
    args = flags(tiny_model_dir, run_dir, *PERSONALIZATION, "--compare.methods", "prompting,mipo,sft-self,rlaif",
                 "--compare.seeds", "0,1", "--generate.rlaif_samples", "1", "--evaluate.mi_negatives", "2",
                 "--train.learning_rate", "0.05", "--evaluate.max_new_tokens", "16")  # adapters far apart
    assert main(["compare", *args]) == 0
    out = capsys.readouterr().out
    assert "prompting" in out and "sft-self" in out and "failed" in out  # rlaif: 1 sample per prompt cannot make a pair
    result = json.loads((run_dir / "compare.json").read_text())
    assert result["method_order"] == ["prompting", "mipo", "sft-self"]
    assert set(result["failures"]) == {"rlaif/seed0", "rlaif/seed1"}
    assert not (run_dir / "partial").exists()  # the evaluation's resume logs go, and the empty partial/ with them
    # mipo and sft-self read the same samples: one generate stage per seed, the same pairs
    assert (run_dir / "mipo" / "seed0" / "pairs.jsonl").read_bytes() == \
        (run_dir / "sft-self" / "seed0" / "pairs.jsonl").read_bytes() == \
        (run_dir / "samples" / "pairs-seed0" / "pairs.jsonl").read_bytes()
    assert (run_dir / "mipo" / "seed0" / "pairs.jsonl").read_bytes() != (run_dir / "mipo" / "seed1" / "pairs.jsonl").read_bytes()
    rows = read_jsonl(run_dir / "compare_responses.jsonl")
    pm = result["primary_metric"]
    # the table is the seed-average of the per-item values in compare_responses.jsonl
    for m in ("prompting", "mipo"):
        per_seed = [[r[f"{m}/seed{s}_metrics"][pm] for r in rows] for s in (0, 1)]
        items = [sum(v) / 2 for v in zip(*per_seed)]
        assert result["methods"][m]["metrics"][pm]["mean"] == pytest.approx(sum(items) / len(items))
    # each model answered with its own weights: the responses equal a fresh generation with that adapter alone
    from peft import PeftModel

    from .conftest import sample
    from mipo.tasks import get_task

    cfg = Config()
    cfg.task.data = PERSONALIZATION[1]
    task = get_task("personalization", cfg.task)
    prompts = [task.messages(it) for it in task.load(cfg.task, "test")]
    answers = {}
    for m in ("mipo", "sft-self"):
        base, tok = models.load(ModelArgs(name=str(tiny_model_dir)))
        peft = PeftModel.from_pretrained(base, str(run_dir / m / "seed0" / "train" / "adapter")).eval()
        answers[m] = sample(peft, tok, prompts, temperature=0.0, top_p=1.0, max_new_tokens=16, batch_size=32, seed=7)
        assert [r[f"{m}/seed0"] for r in rows] == answers[m]
    assert answers["mipo"] != answers["sft-self"]
    d = result["methods"]["mipo"]["metrics"][pm]
    assert d["delta"] == pytest.approx(d["mean"] - result["methods"]["prompting"]["metrics"][pm]["mean"])
    # the report reads on the user-facing measures too: a Δ row per trained method, violations and cues beside MI
    md = (run_dir / "compare.md").read_text()
    table = md.split("Paired difference to `prompting`")[1].split("\n\n")[1].splitlines()
    assert all(f"Δ {label}" in table[0] for label in ("broken responses", "fluency", "words", "cond. MI per token"))
    assert [r.split("|")[1].strip() for r in table[2:]] == ["mipo", "sft-self"]
    md = (run_dir / "compare.md").read_text()
    assert "| mipo | 2 |" in md and "rlaif/seed0" in md
    assert (run_dir / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second call reuses every stage: same table
    before = (run_dir / "compare.json").read_bytes()
    assert main(["compare", *args]) == 0
    assert (run_dir / "compare.json").read_bytes() == before
