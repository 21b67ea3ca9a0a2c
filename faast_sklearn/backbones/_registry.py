"""Backbone registry, picklable specs, and the per-process model table.

A backbone reaches the estimators as a *name* or a small :class:`BackboneSpec`, never as an
``nn.Module`` (``clone()`` would copy the network for every grid point). Names resolve to
factories here; ``"<scheme>:<model>"`` names to the factory their adapter registered with
:func:`register_scheme`, so this module imports no adapter (timm's ``_registry.py`` is the
model). :func:`model_key` is a network's identity by content; loaded modules are shared per
(name, model key, device), so clones, folds and unpickled estimators share one copy and a
pickle never carries weights.
"""

from __future__ import annotations

import difflib
import os
import threading
import uuid
import warnings
from collections.abc import Callable, Mapping
from copy import deepcopy
from dataclasses import dataclass, field, replace
from typing import Any

from ..utils._content_key import Unkeyable, content_key
from ..utils._torch import import_torch


@dataclass(eq=False)
class Backbone:
    """A loaded backbone: a frozen module plus what extraction needs to feed it.

    Factories return this object; users normally never see it.

    Parameters
    ----------
    model : torch.nn.Module
        For images, maps a normalised float batch ``(N, 3, H, W)`` to ``(N, n_features)``.
        For text, maps the tokenizer's keyword tensors to ``(N, n_features)``.
    n_features : int
        Feature dimension.
    modality : {"image", "text"}
        What the model consumes.
    data_config : dict or None
        Image preprocessing in timm's vocabulary: ``input_size`` (C, H, W), ``mean``, ``std``,
        ``interpolation``, ``crop_pct``, ``crop_mode``.
    tokenizer : callable or None
        Text only: ``tokenizer(list_of_str) -> dict[str, torch.Tensor]``.
    description : str
        Human-readable description (model name and weights source) for messages.
    """

    model: Any
    n_features: int
    modality: str = "image"
    data_config: dict | None = None
    tokenizer: Callable[[list[str]], dict] | None = None
    description: str = ""


@dataclass(frozen=True)
class BackboneSpec:
    """A small, picklable description of a backbone.

    Use it where a plain name is not enough, e.g. to change the input resolution or pass
    keyword arguments to the model constructor. It is cheap to clone and pickle.

    Parameters
    ----------
    name : str
        A registered name (see :func:`list_backbones`), ``"timm:<model>"`` or
        ``"hf:<model id or local folder>"``.
    image_size : int or None, default=None
        Square input resolution overriding the backbone's pretrained configuration (timm
        resamples ViT position embeddings). Smaller is faster; accuracy may drop.
    model_kwargs : mapping or None, default=None
        Extra keyword arguments for the backbone factory (e.g. ``timm.create_model``).

    Examples
    --------
    >>> from faast_sklearn.backbones import BackboneSpec
    >>> BackboneSpec("efficientnet_lite0", image_size=128)
    BackboneSpec(name='efficientnet_lite0', image_size=128, model_kwargs=None)
    """

    name: str
    image_size: int | None = None
    model_kwargs: Mapping[str, Any] | None = field(default=None)


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Backbone]
    meta: dict
    # A random token standing for a factory whose content cannot be hashed (never shared across
    # processes, so never stale); None: the factory is keyed by its content at each use, so a
    # global it reads that changes later changes its key too.
    token: bytes | None = None


_REGISTRY: dict[str, _Entry] = {}
# URL-like schemes ("timm:", "hf:") -> (factory, name of the argument taking the model name).
_SCHEMES: dict[str, tuple[Callable[..., Backbone], str]] = {}
# Loaded modules by (name, model key, device); not a data cache: one network per identity.
_MODELS: dict[tuple[str, bytes, str], Backbone] = {}
_LOCK = threading.RLock()


def register_scheme(prefix: str, factory: Callable[..., Backbone], argument: str) -> None:
    """Route every name ``"<prefix><model>"`` to ``factory(<argument>=<model>, ...)``.

    Adapters call this on import (``backbones/__init__.py`` imports them), so the registry
    imports no adapter.

    Parameters
    ----------
    prefix : str
        Ends with ``":"``, e.g. ``"timm:"``.
    factory : callable
        As in :func:`register_backbone`, plus the keyword ``argument``.
    argument : str
        The keyword through which ``factory`` receives the text after the prefix.
    """
    if not isinstance(prefix, str) or not prefix.endswith(":") or ":" in prefix[:-1]:
        raise ValueError(f"A scheme prefix is a word ending with ':'; got {prefix!r}.")
    with _LOCK:
        _SCHEMES[prefix] = (factory, argument)
        _drop_models(lambda name: name.startswith(prefix))


def _token(name: str, factory: Callable[..., Backbone]) -> bytes | None:
    try:
        content_key(factory)
        return None
    except Unkeyable as exc:
        warnings.warn(
            f"The factory of backbone {name!r} cannot be keyed by its content ({exc}); its "
            "features are cached in this process only and the memory= disk cache will not "
            "reuse them in another process. Make the factory a plain function whose defaults, "
            "closure and globals pickle to reuse them.",
            UserWarning,
            stacklevel=3,
        )
        return uuid.uuid4().bytes


def _drop_models(match: Callable[[str], bool]) -> None:
    for key in [k for k in _MODELS if match(k[0])]:
        del _MODELS[key]


def register_backbone(
    name: str, factory: Callable[..., Backbone], *, overwrite: bool = False, **meta: Any
) -> None:
    """Register a backbone factory under ``name``.

    Parameters
    ----------
    name : str
        The name users pass as ``backbone=``. It may not start with ``"timm:"`` or ``"hf:"``.
    factory : callable
        ``factory(*, pretrained, weights, image_size, **model_kwargs) -> Backbone``, building
        the model on the CPU. It must fail fast with an actionable message when pretrained
        weights are unavailable, and never silently return random weights when
        ``pretrained=True``.
    overwrite : bool, default=False
        Replace an existing registration instead of raising. The network loaded from the old
        factory is dropped, and features cached under the name before are never served again
        (a replaced factory is keyed apart from every earlier one, even one of the same
        content, so its features are kept in memory only for the rest of the process).
    **meta
        Free-form metadata shown by :func:`get_backbone_meta`, e.g. ``modality="image"``,
        ``n_features=768``, ``source="timm:vit_base_patch16_224"``, ``offline=True``.

    Raises
    ------
    ValueError
        If ``name`` is taken and ``overwrite`` is False, or ``name`` is malformed.
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(
            "Backbone name must be a non-empty string without a prefix (':' is reserved for "
            f"schemes such as 'timm:' and 'hf:'); got {name!r}."
        )
    if not callable(factory):
        raise TypeError(f"factory must be callable; got {type(factory).__name__}.")
    with _LOCK:
        if name in _REGISTRY and not overwrite:
            raise ValueError(
                f"A backbone named {name!r} is already registered; pass overwrite=True to replace it."
            )
        token = _token(name, factory)
        if name in _REGISTRY and token is None:
            # Replaced: keyed apart from every earlier registration, even of the same content
            # (a factory reading a file that changed), for the rest of this process.
            token = uuid.uuid4().bytes
        _REGISTRY[name] = _Entry(factory, dict(meta), token)
        # A replaced factory must not be served from the model table.
        _drop_models(lambda loaded: loaded == name)


def unregister_backbone(name: str) -> None:
    """Remove the backbone registered as ``name`` and drop its loaded network.

    Raises
    ------
    ValueError
        If no backbone is registered as ``name``.
    """
    with _LOCK:
        _check_known(name)
        del _REGISTRY[name]
        _drop_models(lambda loaded: loaded == name)


def list_backbones() -> list[str]:
    """Return the sorted names of the registered backbones.

    Any timm model is also available as ``"timm:<model>"`` and any Hugging Face text model or
    local sentence-transformers folder as ``"hf:<id or path>"``.

    Examples
    --------
    >>> from faast_sklearn.backbones import list_backbones
    >>> "efficientnet_lite0" in list_backbones()
    True
    """
    return sorted(_REGISTRY)


def get_backbone_meta(name: str) -> dict:
    """Return a copy of the metadata registered with ``name``."""
    _check_known(name)
    return dict(_REGISTRY[name].meta)


def _scheme_of(name: str) -> str | None:
    prefix = name.partition(":")[0] + ":"
    return prefix if ":" in name and prefix in _SCHEMES else None


def _check_known(name: str) -> None:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name.lower(), list_backbones(), n=1, cutoff=0.75)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown backbone {name!r}.{hint} Known backbones: {', '.join(list_backbones())}; "
            "or use 'timm:<any timm model>', 'hf:<Hugging Face text model or local folder>', "
            "a BackboneSpec, or a callable mapping a batch to features."
        )


def resolve_backbone(backbone: str | BackboneSpec) -> BackboneSpec:
    """Turn a backbone parameter (name or spec) into a validated :class:`BackboneSpec`.

    Raises
    ------
    ValueError
        For unknown names (the message lists the registered ones) or empty prefixed names.
    TypeError
        For anything that is neither a string nor a :class:`BackboneSpec`.
    """
    if isinstance(backbone, str):
        spec = BackboneSpec(backbone)
    elif isinstance(backbone, BackboneSpec):
        spec = backbone
    else:
        raise TypeError(
            "backbone must be a registered name, 'timm:<model>', 'hf:<model>', a BackboneSpec, "
            f"a FeatureExtractor or a callable; got {type(backbone).__name__}."
        )
    if not isinstance(spec.name, str):
        raise TypeError(f"BackboneSpec.name must be a string; got {spec.name!r}.")
    prefix = _scheme_of(spec.name)
    if prefix is not None:
        if not spec.name[len(prefix) :].strip():
            raise ValueError(f"Backbone {spec.name!r} names no model after {prefix!r}.")
    else:
        _check_known(spec.name)
    if spec.image_size is not None and (
        not isinstance(spec.image_size, int)
        or isinstance(spec.image_size, bool)
        or spec.image_size < 1
    ):
        raise ValueError(f"image_size must be a positive int or None; got {spec.image_size!r}.")
    return spec


def _factory_for(spec: BackboneSpec) -> tuple[Callable[..., Backbone], dict, bytes | None]:
    """(factory, the keyword arguments the name fixes, the token of an unkeyable factory)."""
    prefix = _scheme_of(spec.name)
    if prefix is not None:
        factory, argument = _SCHEMES[prefix]
        return factory, {argument: spec.name[len(prefix) :]}, None
    entry = _REGISTRY[spec.name]
    return entry.factory, {}, entry.token


def _weights_identity(weights: str | os.PathLike | None) -> tuple | None:
    # Path, size, modification and change times and inode: a file replaced on disk, even by
    # one of the same size and mtime (cp -p, rsync -t, tar -x), gets a new identity.
    if weights is None:
        return None
    path = os.path.abspath(os.fspath(weights))
    try:
        st = os.stat(path)
    except OSError:
        return (path,)
    return (path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def model_key(
    backbone: str | BackboneSpec, *, pretrained: bool = True, weights: Any = None
) -> bytes:
    """The identity, by content, of the network a backbone parameter denotes (not its device).

    Covers the factory (its code, defaults, closure cells and the globals it reads), the
    keyword arguments the name and the spec give it, the image size, ``pretrained`` and the
    weights file's identity (path, size, ``mtime_ns``, inode, ``ctime_ns``). Features are cached
    under it, in memory and on disk, so a changed factory or weights file means new features.

    Returns
    -------
    key : bytes
        A 16-byte digest from :func:`faast_sklearn.utils._content_key.content_key`.
    """
    spec = resolve_backbone(backbone)
    factory, fixed, token = _factory_for(spec)
    return content_key(
        "backbone",
        factory if token is None else token,
        fixed,
        dict(spec.model_kwargs or {}),
        spec.image_size,
        bool(pretrained),
        _weights_identity(weights),
    )


def load_backbone(
    backbone: str | BackboneSpec,
    *,
    pretrained: bool = True,
    weights: str | os.PathLike | None = None,
    device: str = "cpu",
) -> Backbone:
    """Load a backbone once per process and device, frozen, in eval mode.

    Parameters
    ----------
    backbone : str or BackboneSpec
        See :func:`resolve_backbone`.
    pretrained : bool, default=True
        Load pretrained weights. ``False`` gives random weights (for tests and timing only).
    weights : path-like or None, default=None
        A local weights file (or folder for ``hf:`` models) replacing the default weights.
    device : str, default="cpu"
        A resolved device string (see :func:`faast_sklearn.utils._torch.resolve_device`).

    Returns
    -------
    backbone : Backbone
        The cached, shared instance. Do not modify its module.
    """
    spec = resolve_backbone(backbone)
    if weights is not None and not os.path.exists(os.fspath(weights)):
        raise FileNotFoundError(f"weights={os.fspath(weights)!r} does not exist.")
    with _LOCK:
        key = (spec.name, model_key(spec, pretrained=pretrained, weights=weights), str(device))
        loaded = _MODELS.get(key)
        if loaded is not None:
            return loaded
        # Reuse a copy loaded on another device instead of rebuilding it from disk.
        twin = next((b for k, b in _MODELS.items() if k[:2] == key[:2]), None)
        if twin is not None:
            loaded = _move(twin, device, copy=True)
        else:
            factory, fixed, _ = _factory_for(spec)
            kwargs = dict(spec.model_kwargs or {})
            kwargs.update(fixed)
            built = factory(
                pretrained=bool(pretrained), weights=weights, image_size=spec.image_size, **kwargs
            )
            if not isinstance(built, Backbone):
                raise TypeError(
                    f"The factory of backbone {spec.name!r} returned {type(built).__name__}, "
                    "not a faast_sklearn.backbones.Backbone."
                )
            loaded = _move(built, device, copy=False)
        _MODELS[key] = loaded
        return loaded


def _move(backbone: Backbone, device: str, *, copy: bool) -> Backbone:
    torch = import_torch()
    model = deepcopy(backbone.model) if copy else backbone.model
    model = model.to(torch.device(device)).eval()
    model.requires_grad_(False)
    return replace(backbone, model=model)


def bound_factory(factory: Callable[..., Backbone], name: str, **fixed: Any):
    """``factory`` with the keyword arguments ``fixed`` given, for :func:`register_backbone`
    (a closure, so that :func:`model_key` keys it by content)."""

    def bound(**kwargs: Any) -> Backbone:
        return factory(**fixed, **kwargs)

    bound.__name__ = name
    return bound


def clear_backbone_cache() -> None:
    """Drop every loaded backbone from this process (frees host and GPU memory)."""
    with _LOCK:
        _MODELS.clear()
