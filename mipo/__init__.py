"""mipo: a language model improves itself by maximising prompt-response mutual information (arXiv 2603.19294)."""
from .config import Config, EvalArgs, GenerateArgs, ModelArgs, TaskArgs, TrainArgs
from .recipe import load_recipe

__all__ = ["Config", "EvalArgs", "GenerateArgs", "ModelArgs", "TaskArgs", "TrainArgs", "load_recipe"]
__version__ = "0.1.0"
