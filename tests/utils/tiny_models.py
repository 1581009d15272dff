"""Cut-down copies of the default LLM for fast training tests."""

from __future__ import annotations

from pathlib import Path


def make_cut_down_model(source: Path, target: Path, layers: int = 2) -> Path:
    """Save the first ``layers`` decoder layers of the model at ``source``, and its tokenizer, to ``target``.

    The embeddings, final norm and kept layers carry the real weights, so the tiny model still
    speaks the tokenizer's language a little, which makes loss curves meaningful in seconds.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.runtime.model_files import load_plain_config

    if (target / "config.json").exists():
        return target
    config = load_plain_config(source)
    config.num_hidden_layers = layers
    if getattr(config, "layer_types", None):
        config.layer_types = config.layer_types[:layers]
    full = AutoModelForCausalLM.from_pretrained(source, config=load_plain_config(source), dtype=torch.float32)
    small = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = {k: v for k, v in full.state_dict().items() if k in small.state_dict()}
    small.load_state_dict(state, strict=False)
    small.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target
