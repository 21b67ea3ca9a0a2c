"""Decoder language models (GPT-2, Llama, Qwen families) as text backbones, and the ``hf:`` scheme.

A causal language model reads left to right, so the state that has seen the whole text is the
last token's: texts are padded on the left and the feature is the hidden state at the last
non-padding position (``pooling="last"``), or the mean over the non-padding positions
(``pooling="mean"``), of the last layer or of a chosen one (``layer=``, an index into the
model's hidden states: 0 is the embeddings, -1 the last layer). Position ids follow the
attention mask, so a text's feature does not depend on how much padding its batch needs.
On CUDA the extractor runs the forward pass under bfloat16 autocast (``precision="auto"``).

``"hf:<id or folder>"`` builds a decoder for a causal language model, CLIP's text tower with its
projection for a CLIP model (:mod:`._clip`), and a pooled encoder (:mod:`._text`) otherwise.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from ..utils._torch import import_torch
from ._clip import clip_text_factory
from ._registry import Backbone, bound_factory, register_backbone, register_scheme
from ._text import (
    _import_transformers,
    _local_folder,
    _read_sentence_transformers,
    hf_text_factory,
    token_limit,
)

# Model types of decoder-only language models whose checkpoints may be saved without a
# causal-LM architecture name (e.g. a bare GPT2Model).
_DECODER_TYPES = {
    "bloom", "falcon", "gemma", "gemma2", "gemma3_text", "gpt2", "gpt_bigcode", "gpt_neo",
    "gpt_neox", "gptj", "llama", "mistral", "mixtral", "olmo", "olmo2", "opt", "phi", "phi3",
    "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "smollm3", "stablelm",
}  # fmt: skip


def is_decoder_config(config: Any) -> bool:
    """Whether a transformers configuration describes a decoder-only language model."""
    if getattr(config, "is_encoder_decoder", False):
        return False
    names = getattr(config, "architectures", None) or []
    if any(n.endswith(("ForCausalLM", "LMHeadModel")) for n in names):
        return not any(n.startswith(("Bert", "Roberta", "XLMRoberta", "Electra")) for n in names)
    return getattr(config, "model_type", None) in _DECODER_TYPES


def _decoder_class():
    torch = import_torch()

    class DecoderEncoder(torch.nn.Module):
        """A decoder's hidden states pooled at the last non-padding token (or averaged)."""

        def __init__(self, transformer: Any, pooling: str, layer: int | None):
            super().__init__()
            self.transformer = transformer
            self.pooling = pooling
            self.layer = layer

        def forward(self, input_ids, attention_mask, **_):
            mask = attention_mask.long()
            # Positions count real tokens only: left padding does not shift them.
            position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
            out = self.transformer(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                output_hidden_states=self.layer is not None,
            )
            h = out.last_hidden_state if self.layer is None else out.hidden_states[self.layer]
            if self.pooling == "mean":
                weights = mask.unsqueeze(-1).to(h.dtype)
                return (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
            # The last position holding a token, whichever side the padding is on.
            steps = torch.arange(mask.shape[1], device=mask.device)
            last = (mask * steps).argmax(dim=1)
            return h[torch.arange(h.shape[0], device=h.device), last]

    return DecoderEncoder


class _DecoderTokenizer:
    """list[str] -> left-padded tensors; texts over ``max_length`` tokens keep their first
    ``max_length`` tokens, with a warning saying how many were cut."""

    def __init__(self, tokenizer: Any, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, texts: list[str]) -> dict:
        ids = self.tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
        cut = sum(len(x) > self.max_length for x in ids)
        if cut:
            warnings.warn(
                f"{cut} of {len(ids)} texts are longer than {self.max_length} tokens and were "
                f"cut to their first {self.max_length} tokens (pass "
                "BackboneSpec(..., model_kwargs={'max_length': ...}) to change the limit).",
                UserWarning,
                stacklevel=2,
            )
            ids = [x[: self.max_length] for x in ids]
        batch = self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def hf_decoder_factory(
    *,
    folder: str,
    model_id: str,
    pretrained: bool,
    pooling: str = "last",
    layer: int | None = None,
    max_length: int | None = None,
) -> Backbone:
    """Build a decoder language model from a local folder as a text backbone."""
    transformers = _import_transformers()
    if pooling not in {"last", "mean"}:
        raise ValueError(f"pooling of a decoder must be 'last' or 'mean'; got {pooling!r}.")
    config = transformers.AutoConfig.from_pretrained(folder)
    n_layers = getattr(config, "num_hidden_layers", None)
    if layer is not None and (
        isinstance(layer, bool)
        or not isinstance(layer, int)
        or (n_layers is not None and not -n_layers - 1 <= layer <= n_layers)
    ):
        raise ValueError(
            f"layer must be an int in [{-(n_layers or 0) - 1}, {n_layers}] (0: the embeddings, "
            f"-1: the last layer) for {model_id!r}; got {layer!r}."
        )
    if pretrained:
        transformer = transformers.AutoModel.from_pretrained(folder)
    else:
        transformer = transformers.AutoModel.from_config(config)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    limit = token_limit(tokenizer, config, max_length, 1024)
    model = _decoder_class()(transformer, pooling, layer).eval()
    return Backbone(
        model=model,
        n_features=int(config.hidden_size),
        modality="text",
        tokenizer=_DecoderTokenizer(tokenizer, limit),
        description=f"hf:{model_id} (decoder, {pooling} token"
        f"{'' if layer is None else f', layer {layer}'}; "
        f"{'pretrained' if pretrained else 'random weights'})",
    )


def hf_factory(
    *,
    model_id: str,
    pretrained: bool,
    weights: str | os.PathLike | None,
    image_size: int | None,
    pooling: str | None = None,
    layer: int | None = None,
    **kwargs: Any,
) -> Backbone:
    """``"hf:<id or folder>"``: a decoder for causal language models, CLIP's text tower for CLIP
    models, else a pooled encoder.

    Keyword arguments (through ``BackboneSpec(model_kwargs=...)``): ``pooling`` (``"last"``
    or ``"mean"`` for decoders; ``"mean"``, ``"cls"`` or ``"max"`` for encoders), ``layer``
    (decoders only), ``max_length``, and ``normalize`` (encoders only).
    """
    if image_size is not None:
        raise ValueError("image_size does not apply to text backbones.")
    transformers = _import_transformers()
    folder = _local_folder(model_id, weights)
    transformer_dir = _read_sentence_transformers(folder)[0]
    config = transformers.AutoConfig.from_pretrained(transformer_dir)
    if is_decoder_config(config):
        unknown = set(kwargs) - {"max_length"}
        if unknown:
            raise TypeError(f"Unexpected arguments for decoder {model_id!r}: {sorted(unknown)}.")
        return hf_decoder_factory(
            folder=transformer_dir,
            model_id=model_id,
            pretrained=pretrained,
            pooling=pooling or "last",
            layer=layer,
            **kwargs,
        )
    if layer is not None:
        raise ValueError(f"layer= applies to decoder language models; {model_id!r} is not one.")
    if getattr(config, "model_type", None) in {"clip", "clip_text_model"}:
        if pooling is not None or kwargs:
            raise TypeError(f"CLIP's text tower {model_id!r} takes no pooling or other arguments.")
        return clip_text_factory(
            model_id=model_id, pretrained=pretrained, weights=weights, image_size=image_size
        )
    return hf_text_factory(
        model_id=model_id,
        pretrained=pretrained,
        weights=weights,
        image_size=image_size,
        pooling=pooling,
        **kwargs,
    )


register_scheme("hf:", hf_factory, "model_id")

# GPT-2 family (the paper's language experiments use GPT-2 XL): hub weights, no wheel.
_GPT2 = {"gpt2": ("", 768), "gpt2_medium": ("-medium", 1024), "gpt2_large": ("-large", 1280)}
_GPT2["gpt2_xl"] = ("-xl", 1600)


for _name, (_suffix, _dim) in _GPT2.items():
    register_backbone(
        _name,
        bound_factory(hf_factory, _name, model_id=f"openai-community/gpt2{_suffix}"),
        modality="text",
        n_features=_dim,
        source=f"hf:openai-community/gpt2{_suffix} (decoder, last-token state)",
        offline=False,
    )
