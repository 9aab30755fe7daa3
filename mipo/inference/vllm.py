"""In-process vLLM (optional extra `mipo[vllm]`, CUDA): one `LLM`, tensor parallel over `tensor_parallel_size`;
with `max_lora_rank`, LoRA adapters answer through vLLM's LoRARequest on the same weights (`with_adapter`)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

from ..io import BatchLog, MipoError
from ..progress import Bar
from ..seeds import derive
from . import Messages, Sampling


def vllm_sampling_kwargs(sampling: Sampling, seed: int) -> dict:
    """mipo's sampling settings as vllm.SamplingParams keyword arguments."""
    greedy = sampling.greedy
    return {"n": 1, "temperature": 0.0 if greedy else float(sampling.temperature),
            "top_p": 1.0 if greedy else float(sampling.top_p), "max_tokens": int(sampling.max_new_tokens),
            "seed": int(seed), "skip_special_tokens": True}


class VLLMEngine:
    """In-process vLLM: one `LLM` (tensor parallel over `tensor_parallel_size` GPUs), chat prompts in chunks."""

    name = "vllm"

    def __init__(self, model_path: str, *, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 dtype: str = "auto", seed: int = 0, trust_remote_code: bool = False, max_lora_rank: int | None = None,
                 setting: str = "generate.engine"):
        try:
            import vllm
        except ImportError:
            raise MipoError(f"{setting}=vllm needs vLLM (a CUDA machine): pip install 'mipo[vllm]'; or serve "
                            f"the model with `vllm serve` and use {setting}=openai") from None
        self._vllm = vllm
        self.model_path = model_path
        self.adapter, self.lora = None, None  # with_adapter: the adapter's path and its LoRARequest
        self._lora_ids: dict[str, int] = {}  # adapter path -> vLLM's id for it (unique per LLM, from 1)
        lora = {"enable_lora": True, "max_lora_rank": max_lora_rank} if max_lora_rank else {}
        self.llm = vllm.LLM(model=model_path, tensor_parallel_size=tensor_parallel_size, dtype=dtype, seed=seed,
                            gpu_memory_utilization=gpu_memory_utilization, trust_remote_code=trust_remote_code, **lora)

    def with_adapter(self, adapter_dir: Path) -> "VLLMEngine":
        """This engine's LLM answering with the LoRA adapter saved in `adapter_dir` (vLLM's LoRARequest): no second
        copy of the weights. The LLM must have been made with a max_lora_rank of at least the adapter's rank."""
        from vllm.lora.request import LoRARequest

        path = str(adapter_dir)
        lora_id = self._lora_ids.setdefault(path, len(self._lora_ids) + 1)
        view = copy.copy(self)
        view.adapter, view.lora = path, LoRARequest(f"adapter{lora_id}", lora_id, path)
        return view

    def sample(self, prompts: list[Messages], sampling: Sampling, *, seed: int, batch_size: int,
               desc: str | None = "sampling", resume_dir=None) -> list[str]:
        blog = BatchLog(resume_dir, {"op": "sample-vllm", "prompts": prompts, "t": sampling.temperature,
                                     "p": sampling.top_p, "n": sampling.max_new_tokens, "bs": batch_size, "seed": seed,
                                     "model": self.model_path,
                                     # no adapter: the key logs made before adapters existed were written under
                                     **({"adapter": self.adapter} if self.adapter else {})})
        done = blog.load()
        chunks = [list(range(s, min(s + batch_size, len(prompts)))) for s in range(0, len(prompts), batch_size)]
        out: list[str] = [""] * len(prompts)
        with Bar(len(prompts), desc, "prompts") as bar:
            for b, idx in enumerate(chunks):
                if b not in done:
                    params = [self._vllm.SamplingParams(**vllm_sampling_kwargs(sampling, derive(seed, "request", i)))
                              for i in idx]
                    results = self.llm.chat([prompts[i] for i in idx], params, use_tqdm=False,
                                            lora_request=self.lora)
                    done[b] = [r.outputs[0].text.strip() for r in results]
                    blog.append(b, done[b])
                for i, text in zip(idx, done[b]):
                    out[i] = text
                bar.update(len(idx))
        return out


VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts (its LoRAConfig)


def lora_rank(adapter_dirs) -> int | None:
    """The smallest max_lora_rank vLLM accepts that holds every adapter's rank (adapter_config.json "r"); None
    when there is no adapter."""
    ranks = [int(json.loads((Path(d) / "adapter_config.json").read_text())["r"]) for d in adapter_dirs]
    if not ranks:
        return None
    return next((r for r in VLLM_LORA_RANKS if r >= max(ranks)), max(ranks))
