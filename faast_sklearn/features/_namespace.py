"""What identifies a backbone in the cache: a named backbone by the registry's key, a callable
by its content (or its ``__faast_key__``); and what counts as a callable backbone."""

from __future__ import annotations

import warnings
import weakref
from typing import Any

from ..backbones import BackboneSpec
from ..backbones._registry import model_key
from ..utils._content_key import Unkeyable, content_key
from ..utils._torch import import_torch

# Bumped whenever preprocessing changes, so that stale disk caches are not served.
CACHE_VERSION = "features-v2"
# Callables that could not be keyed and were warned about (once each).
_WARNED: weakref.WeakSet = weakref.WeakSet()
_WARNED_IDS: set[int] = set()  # those that take no weak reference


def backbone_namespace(backbone: Any, pretrained: bool, weights: Any, precision: str) -> bytes:
    """The namespace of a named backbone or spec: the registry's key of its network (which
    covers its factory and weights) and the precision."""
    key = model_key(backbone, pretrained=pretrained, weights=weights)
    return content_key(key, precision, CACHE_VERSION)


def is_callable_backbone(backbone: Any) -> bool:
    """Whether ``backbone`` is a callable batch -> features; refuses module instances."""
    if not callable(backbone) or isinstance(backbone, (str, BackboneSpec, type)):
        return False
    module = import_torch().nn.Module
    if isinstance(backbone, module) or isinstance(getattr(backbone, "__self__", None), module):
        # clone() would deep-copy its weights for every fold and grid point, and every
        # pickle of the estimator would carry them.
        what = type(getattr(backbone, "__self__", backbone)).__name__
        raise TypeError(
            f"backbone cannot be a torch.nn.Module or its method (got one of a {what}): "
            "scikit-learn copies parameters for every clone, fold and pickle. Pass a name "
            "('timm:<model>' with weights=<file>), or register_backbone(name, factory) and "
            "pass the name, or a module-level function of a batch that runs a module it loads "
            "once (functions are pickled by name)."
        )
    return True


def callable_namespace(fn: Any) -> bytes | None:
    """A callable's cache namespace: its ``__faast_key__`` if it has one, else its content
    (code, defaults, closure cells, the globals it reads); None, with a warning once per
    callable, where that content cannot be keyed."""
    explicit = getattr(fn, "__faast_key__", None)
    try:
        if explicit is not None:
            return content_key("callable key", explicit, CACHE_VERSION)
        return content_key("callable", fn, CACHE_VERSION)
    except Unkeyable as exc:
        reason = exc
    try:
        if fn in _WARNED:
            return None
        _WARNED.add(fn)
    except TypeError:  # no weak reference to it
        if id(fn) in _WARNED_IDS:
            return None
        _WARNED_IDS.add(id(fn))
    warnings.warn(
        f"The features of backbone {backbone_name(fn)!r} are not cached: {reason}. They are computed "
        "again on every call (each fold and grid point). To cache them, give the callable a "
        "key that changes whenever its output would (fn.__faast_key__ = 'my-model-v1'), or "
        "register it with faast_sklearn.backbones.register_backbone(name, factory) and pass "
        "the name.",
        UserWarning,
        stacklevel=4,
    )
    return None


def backbone_name(backbone: Any) -> str:
    if isinstance(backbone, str):
        return backbone
    if isinstance(backbone, BackboneSpec):
        return backbone.name
    return getattr(backbone, "__name__", type(backbone).__name__)
