"""mi-grpo: TRL's GRPOTrainer with the PMI reward under the frozen base, on the tiny model."""
import json

import pytest
import torch
from safetensors.torch import load_file

from mipo import ModelArgs, models, pipeline
from mipo.config import Config
from .conftest import logprobs
from mipo.methods.grpo import make_trainer

from .conftest import FIXTURES

X = [[{"role": "user", "content": "About me: I am vegan.\n\nSuggest a quick dinner."}],
     [{"role": "user", "content": "Explain inflation."}]]
X_NEG = [[{"role": "user", "content": "Suggest a quick dinner."}],
         [{"role": "user", "content": "What is 3 + 4?"}]]
Y = ["Lentil soup with rice.", "Prices rise over time."]


def write_rows(path):
    with path.open("w") as f:
        for i, (x, xn) in enumerate(zip(X, X_NEG)):
            f.write(json.dumps({"prompt": x, "negative_prompt": xn, "meta": {"prompt_id": str(i)}}) + "\n")
    return path


@pytest.mark.parametrize("lora", [True, False])
def test_reward_is_pmi_under_the_frozen_base(tiny_model_dir, tmp_path, lora):
    policy, tok = models.load(ModelArgs(name=str(tiny_model_dir), dtype="float32"))  # by hand to 1e-4: fp32
    base, _ = models.load(ModelArgs(name=str(tiny_model_dir), dtype="float32"))
    cfg = Config(seed=0)
    cfg.model.name, cfg.model.dtype = str(tiny_model_dir), "float32"  # full fine-tuning loads the frozen base from here
    cfg.train.lora, cfg.train.batch_size, cfg.generate.max_new_tokens = lora, 2, 8
    trainer = make_trainer(cfg, policy, tok, write_rows(tmp_path / "rows.jsonl"), str(tmp_path / "o"))
    assert trainer.reward_func_names == ["pmi"] and trainer.beta == 0.0 and trainer.ref_model is None
    assert trainer.args.per_device_train_batch_size == 2 * cfg.train.grpo_generations  # 2 prompts x their group
    torch.manual_seed(0)
    with torch.no_grad():  # move the policy away from the base: LoRA B starts at zero, so adapters are a no-op
        for name, p in trainer.model.named_parameters():
            if p.requires_grad and (not lora or "lora_B" in name):
                p.add_(0.5 * torch.randn_like(p))
    assert max(abs(a - b) for a, b in zip(logprobs(trainer.model, tok, X, Y), logprobs(base, tok, X, Y))) > 0.1
    trainer.model.train()  # as during training: TRL calls the rewards in train mode

    reward = trainer.reward_funcs[0](prompts=X, completions=[[{"role": "assistant", "content": y}] for y in Y],
                                     negative_prompt=X_NEG, completion_ids=None, trainer_state=trainer.state)
    by_hand = [p - n for p, n in zip(logprobs(base, tok, X, Y), logprobs(base, tok, X_NEG, Y))]
    assert reward == pytest.approx(by_hand, abs=1e-4)
    assert max(abs(r) for r in reward) > 1e-2  # not 0 = 0: x and x' differ in what they predict
    assert trainer.model.training  # the reward put the model back in train mode...
    if lora:  # ...and its adapter back on
        assert logprobs(trainer.model, tok, X, Y) != pytest.approx(logprobs(base, tok, X, Y), abs=1e-2)


def test_pipeline_mi_grpo_trains_lora_and_evaluates(tiny_model_dir, tmp_path):
    cfg = Config(seed=0, method="mi-grpo", run_dir=str(tmp_path / "run"))
    cfg.model.name = str(tiny_model_dir)
    cfg.task.data = str(FIXTURES / "personalization.jsonl")
    cfg.generate.max_new_tokens, cfg.evaluate.max_new_tokens = 8, 8
    cfg.train.batch_size, cfg.train.grpo_generations, cfg.train.learning_rate = 2, 2, 1e-2
    pipeline.run(cfg)

    run_dir = tmp_path / "run"
    rows = [json.loads(line) for line in (run_dir / "pairs.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["prompt"] != r["negative_prompt"] and "chosen" not in r for r in rows)
    summary = json.loads((run_dir / "train" / "train_summary.json").read_text())
    assert summary["steps"] == 3  # 6 prompts, 2 per step
    assert any("rewards/pmi/mean" in h for h in summary["log_history"])
    lora_b = [v for k, v in load_file(run_dir / "train" / "adapter" / "adapter_model.safetensors").items()
              if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: nonzero means it trained
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["models"]) == {"base", "trained"} and metrics["train"]["steps"] == 3
    assert (run_dir / "report.md").exists()
