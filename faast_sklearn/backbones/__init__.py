"""Backbones: a name -> factory registry, picklable specs and offline pretrained weights.

Registered names are listed by :func:`list_backbones`; any timm model is ``"timm:<model>"``
and any Hugging Face text model or local folder ``"hf:<id or path>"``.
:func:`encode_class_names` embeds class names with the text tower of a CLIP image backbone.
"""

# Importing the adapters registers their names and schemes; they import timm/transformers
# lazily.
from . import _clip, _decoder, _text, _timm, _tiny  # noqa: E402, F401, I001
from ._clip import IMAGENET_TEMPLATES, encode_class_names, text_class_embeddings, text_tower_of
from ._registry import (
    Backbone,
    BackboneSpec,
    clear_backbone_cache,
    get_backbone_meta,
    list_backbones,
    load_backbone,
    model_key,
    register_backbone,
    register_scheme,
    resolve_backbone,
    unregister_backbone,
)

__all__ = [
    "IMAGENET_TEMPLATES",
    "Backbone",
    "BackboneSpec",
    "clear_backbone_cache",
    "encode_class_names",
    "get_backbone_meta",
    "list_backbones",
    "load_backbone",
    "model_key",
    "register_backbone",
    "register_scheme",
    "resolve_backbone",
    "text_class_embeddings",
    "text_tower_of",
    "unregister_backbone",
]
