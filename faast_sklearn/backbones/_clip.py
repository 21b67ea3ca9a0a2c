"""CLIP: an image tower and its text tower, registered as a pair, and class names as embeddings.

An image backbone whose features live in a joint image-text space names its text tower in its
registration metadata (``text_tower="<name>"``) and both name the space (``space="<id>"``).
:func:`encode_class_names` encodes class names, each through an ensemble of prompt templates
(CLIP's published ImageNet ones by default: the mean of the L2-normalised embeddings, normalised
again, as in CLIP's zero-shot notebook), with the image backbone's own text tower; spaces that do
not match are refused. The embeddings are cached in the package's one cache, keyed by the text
tower's model key and the prompts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..utils._cache import STORE
from ..utils._content_key import content_key
from ..utils._torch import import_torch
from ._registry import (
    Backbone,
    BackboneSpec,
    bound_factory,
    get_backbone_meta,
    list_backbones,
    load_backbone,
    model_key,
    register_backbone,
    resolve_backbone,
)
from ._templates import IMAGENET_TEMPLATES
from ._text import _import_transformers, _local_folder, _Tokenizer

__all__ = ["IMAGENET_TEMPLATES", "encode_class_names", "text_class_embeddings", "text_tower_of"]


def text_tower_of(backbone: str | BackboneSpec) -> str:
    """The registered text tower paired with an image backbone (or the text tower itself).

    Raises
    ------
    ValueError
        If ``backbone`` names no joint image-text space, or its text tower lives in another
        space than it does.
    """
    if not isinstance(backbone, (str, BackboneSpec)):
        raise ValueError(
            "Class names can be encoded only for a backbone given by name (a CLIP image "
            f"backbone such as 'clip_vit_base'); got {type(backbone).__name__}. Pass "
            "class_embeddings as vectors instead."
        )
    spec = resolve_backbone(backbone)
    if ":" in spec.name:
        raise ValueError(
            f"Backbone {spec.name!r} has no registered text tower: class names can be encoded "
            "for registered CLIP image backbones (e.g. 'clip_vit_base') or text towers."
        )
    meta = get_backbone_meta(spec.name)
    if meta.get("modality") == "text" and meta.get("space"):
        return spec.name
    tower = meta.get("text_tower")
    if tower is None:
        paired = [n for n in list_backbones() if get_backbone_meta(n).get("text_tower")]
        if meta.get("modality") == "text":  # a text encoder: names are texts like the rows
            hint = (
                f"pass the names' own features as class_embeddings: "
                f"{{label: v for label, v in zip(labels, FeatureExtractor({spec.name!r})"
                ".transform(names))}"
            )
        else:
            hint = "pass class_embeddings as vectors"
        raise ValueError(
            f"Backbone {spec.name!r} has no text tower: class_embeddings='text' (or names) "
            f"needs a CLIP image backbone with one ({', '.join(paired) or 'none registered'}). "
            f"Or {hint}."
        )
    theirs = get_backbone_meta(tower).get("space")
    if theirs is None or theirs != meta.get("space"):
        raise ValueError(
            f"The text tower {tower!r} of backbone {spec.name!r} embeds into space {theirs!r}, "
            f"not {meta.get('space')!r}: image and text embeddings from different models "
            "cannot be compared."
        )
    return tower


def _prompts(names: Sequence[str], templates: Any) -> tuple[list[str], int]:
    if isinstance(templates, str) and templates == "imagenet":
        templates = IMAGENET_TEMPLATES
    elif templates is None:
        templates = ("{}",)
    elif isinstance(templates, str) or not all(isinstance(t, str) for t in templates):
        raise TypeError(
            "templates must be 'imagenet', None or a list of strings with a '{}' for the class "
            f"name; got {templates!r}."
        )
    templates = list(templates)
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(f"Every template needs a '{{}}' for the class name; got {templates!r}.")
    return [t.format(n) for n in names for t in templates], len(templates)


def encode_class_names(
    backbone: str | BackboneSpec,
    class_names: Sequence[str],
    *,
    templates: Any = "imagenet",
    pretrained: bool = True,
    weights: str | os.PathLike | None = None,
    device: str = "cpu",
    batch_size: int = 256,
) -> np.ndarray:
    """Embed class names with the text tower paired with a CLIP image backbone.

    Parameters
    ----------
    backbone : str or BackboneSpec
        A registered image backbone with a text tower (e.g. ``"clip_vit_base"``) or a text
        tower itself.
    class_names : sequence of str
        One name per class, in the order of the rows wanted.
    templates : "imagenet", None or list of str, default="imagenet"
        Prompt templates with a ``{}`` for the name; each name's embedding is the normalised
        mean of its normalised prompt embeddings. ``"imagenet"``: CLIP's 80 ImageNet
        templates. ``None``: the bare name.
    pretrained, weights : as in :func:`load_backbone`, for the text tower.
    device : str, default="cpu"
        A resolved device.
    batch_size : int, default=256
        Prompts per forward pass.

    Returns
    -------
    embeddings : ndarray of shape (n_classes, n_dims), float32
        L2-normalised rows, in the image backbone's feature space.
    """
    names = [str(n) for n in class_names]
    if not names:
        raise ValueError("class_names is empty.")
    tower = text_tower_of(backbone)
    prompts, per_name = _prompts(names, templates)
    key = content_key(
        "class-names", model_key(tower, pretrained=pretrained, weights=weights), prompts
    )
    hit = STORE.get(key)
    if hit is not None:
        return hit.copy()
    torch = import_torch()
    text = load_backbone(tower, pretrained=pretrained, weights=weights, device=device)
    rows = []
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            tokens = text.tokenizer(prompts[start : start + batch_size])
            tokens = {k: v.to(device) for k, v in tokens.items()}
            rows.append(text.model(**tokens).float().cpu())
    emb = torch.nn.functional.normalize(torch.cat(rows), dim=-1)
    emb = emb.view(len(names), per_name, -1).mean(dim=1)
    out = torch.nn.functional.normalize(emb, dim=-1).numpy()
    image_dim = get_backbone_meta(resolve_backbone(backbone).name).get("n_features")
    if image_dim is not None and image_dim != out.shape[1]:
        raise ValueError(
            f"The text tower {tower!r} gives {out.shape[1]}-d embeddings, but backbone "
            f"{resolve_backbone(backbone).name!r} gives {image_dim}-d features."
        )
    STORE.put(key, out, nbytes=out.nbytes)
    return out.copy()


def text_class_embeddings(
    backbone: str | BackboneSpec,
    class_embeddings: Any,
    classes: Sequence,
    **kwargs: Any,
) -> Any:
    """Resolve the text spellings of an estimator's ``class_embeddings`` into vectors.

    ``"text"``: every class is named by its label (``str(label)``); a mapping whose values are
    all strings names the classes (keys: labels, values: names; it may name classes with no
    training rows). Both become a mapping ``label -> vector`` from :func:`encode_class_names`
    with the backbone's text tower (``kwargs`` go to it). Anything else is returned as is.

    Examples
    --------
    >>> from faast_sklearn.backbones import text_class_embeddings
    >>> text_class_embeddings("test_tiny", None, [0, 1]) is None
    True
    """
    if isinstance(class_embeddings, str):
        if class_embeddings != "text":
            raise ValueError(
                "class_embeddings must be 'text', a mapping label -> name or vector, or an "
                f"array; got {class_embeddings!r}."
            )
        names = {c: str(c) for c in classes}
    elif (
        isinstance(class_embeddings, Mapping)
        and class_embeddings
        and all(isinstance(v, str) for v in class_embeddings.values())
    ):
        names = dict(class_embeddings)
    else:
        return class_embeddings
    labels = list(names)
    vectors = encode_class_names(backbone, [names[c] for c in labels], **kwargs)
    return dict(zip(labels, vectors, strict=True))


def _clip_text_class():
    torch = import_torch()

    class CLIPText(torch.nn.Module):
        """CLIP's text tower with its projection: tokens -> joint-space embedding."""

        def __init__(self, model: Any):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, **_):
            out = self.model(input_ids=input_ids, attention_mask=attention_mask)
            return out.text_embeds

    return CLIPText


def clip_text_factory(
    *, model_id: str, pretrained: bool, weights: Any, image_size: int | None
) -> Backbone:
    """CLIP's text tower (with projection) from the hub cache, a local folder or the hub."""
    if image_size is not None:
        raise ValueError("image_size does not apply to text backbones.")
    transformers = _import_transformers()
    folder = _local_folder(model_id, weights)
    cls = transformers.CLIPTextModelWithProjection
    config = transformers.AutoConfig.from_pretrained(folder)
    if getattr(config, "model_type", None) == "clip":  # a whole CLIP: its text half
        text_config = config.text_config
        text_config.projection_dim = config.projection_dim
        config = text_config
    if pretrained:
        # The vision half of a whole CLIP checkpoint is left out on purpose: no report of it.
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        try:
            model = cls.from_pretrained(folder, config=config)
        finally:
            transformers.logging.set_verbosity(verbosity)
    else:
        model = cls(config)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    return Backbone(
        model=_clip_text_class()(model).eval(),
        n_features=int(model.config.projection_dim),
        modality="text",
        tokenizer=_Tokenizer(tokenizer, 77),
        description=f"{model_id} text tower ({'pretrained' if pretrained else 'random'})",
    )


register_backbone(
    "clip_vit_base_text",
    bound_factory(clip_text_factory, "clip_vit_base_text", model_id="openai/clip-vit-base-patch16"),
    modality="text",
    n_features=512,
    space="openai/clip-vit-base-patch16",
    source="hf:openai/clip-vit-base-patch16 (text tower with projection)",
    offline=False,
)
