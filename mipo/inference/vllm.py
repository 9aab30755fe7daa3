"""In-process vLLM (optional extra `mipo[vllm]`, CUDA): one `LLM`, tensor parallel over `tensor_parallel_size`."""
from __future__ import annotations

from tqdm.auto import tqdm

from ..io import BatchLog, MipoError
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
                 dtype: str = "auto", seed: int = 0, trust_remote_code: bool = False):
        try:
            import vllm
        except ImportError:
            raise MipoError("generate.engine=vllm needs vLLM (a CUDA machine): pip install 'mipo[vllm]'; or serve "
                            "the model with `vllm serve` and use generate.engine=openai") from None
        self._vllm = vllm
        self.model_path = model_path
        self.llm = vllm.LLM(model=model_path, tensor_parallel_size=tensor_parallel_size, dtype=dtype, seed=seed,
                            gpu_memory_utilization=gpu_memory_utilization, trust_remote_code=trust_remote_code)

    def sample(self, prompts: list[Messages], sampling: Sampling, *, seed: int, batch_size: int,
               desc: str | None = "sampling", resume_dir=None) -> list[str]:
        blog = BatchLog(resume_dir, {"op": "sample-vllm", "prompts": prompts, "t": sampling.temperature,
                                     "p": sampling.top_p, "n": sampling.max_new_tokens, "bs": batch_size, "seed": seed,
                                     "model": self.model_path})
        done = blog.load()
        chunks = [list(range(s, min(s + batch_size, len(prompts)))) for s in range(0, len(prompts), batch_size)]
        out: list[str] = [""] * len(prompts)
        with tqdm(total=len(prompts), desc=desc, unit="prompt", disable=desc is None) as bar:
            for b, idx in enumerate(chunks):
                if b not in done:
                    params = [self._vllm.SamplingParams(**vllm_sampling_kwargs(sampling, derive(seed, "request", i)))
                              for i in idx]
                    results = self.llm.chat([prompts[i] for i in idx], params, use_tqdm=False)
                    done[b] = [r.outputs[0].text.strip() for r in results]
                    blog.append(b, done[b])
                for i, text in zip(idx, done[b]):
                    out[i] = text
                bar.update(len(idx))
        return out
