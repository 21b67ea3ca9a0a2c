"""CLIP zero-shot from class names, offline, with a small random CLIP of the real architecture."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from _hf_vocab import byte_chars  # noqa: E402

from faast_sklearn import FAASTClassifier  # noqa: E402
from faast_sklearn.backbones import (  # noqa: E402
    IMAGENET_TEMPLATES,
    Backbone,
    BackboneSpec,
    encode_class_names,
    load_backbone,
    register_backbone,
    text_tower_of,
    unregister_backbone,
)
from faast_sklearn.features import FeatureExtractor  # noqa: E402

NAMES = ["cat", "dog", "car", "tree"]
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def make_tiny_clip(folder, *, seed=0, projection_dim=16):
    """A random two-layer CLIP (16-d joint space) saved with a byte-level CLIP tokenizer."""
    chars = byte_chars()
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars])}
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    layers = {"intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, max_position_embeddings=77,
                         bos_token_id=len(vocab) - 2, eos_token_id=len(vocab) - 1,
                         pad_token_id=len(vocab) - 1, **layers),
        vision_config=dict(hidden_size=32, image_size=32, patch_size=8, **layers),
        projection_dim=projection_dim,
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = transformers.CLIPModel(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


class _ImageTower(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, x):
        out = self.clip.get_image_features(pixel_values=x)
        return out if isinstance(out, torch.Tensor) else out.pooler_output


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_clip")
    model, tokenizer = make_tiny_clip(folder)

    def image_factory(*, pretrained, weights, image_size):
        data_config = {"input_size": (3, 32, 32), "interpolation": "bicubic", "crop_pct": 1.0,
                       "crop_mode": "center", "mean": CLIP_MEAN, "std": CLIP_STD}  # fmt: skip
        return Backbone(_ImageTower(model), 16, "image", data_config, description="tiny clip")

    def text_factory(*, pretrained, weights, image_size):
        return load_backbone(f"hf:{folder}")

    register_backbone("tiny_clip_for_test", image_factory, modality="image", n_features=16,
                      text_tower="tiny_clip_text_for_test", space="tiny")  # fmt: skip
    register_backbone("tiny_clip_text_for_test", text_factory, modality="text", space="tiny")
    yield folder, model, tokenizer
    unregister_backbone("tiny_clip_for_test")
    unregister_backbone("tiny_clip_text_for_test")


def _hand_text(model, tokenizer, prompts):
    batch = tokenizer(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model.get_text_features(**batch)
    out = out if isinstance(out, torch.Tensor) else out.pooler_output
    return torch.nn.functional.normalize(out, dim=-1)


def test_class_names_through_the_paired_text_tower(clip):
    _, model, tokenizer = clip
    assert text_tower_of("tiny_clip_for_test") == "tiny_clip_text_for_test"
    bare = encode_class_names("tiny_clip_for_test", NAMES, templates=None)
    np.testing.assert_allclose(bare, _hand_text(model, tokenizer, NAMES).numpy(), atol=1e-5)
    templates = ["a photo of a {}.", "a drawing of the {}."]
    ens = encode_class_names("tiny_clip_for_test", NAMES, templates=templates)
    hand = torch.stack([_hand_text(model, tokenizer, [t.format(n) for t in templates]).mean(0)
                        for n in NAMES])  # fmt: skip
    np.testing.assert_allclose(ens, torch.nn.functional.normalize(hand, dim=-1), atol=1e-5)
    default = encode_class_names("tiny_clip_for_test", NAMES)  # CLIP's 80 ImageNet templates
    assert len(set(IMAGENET_TEMPLATES)) == 80 and default.shape == (4, 16)
    # CLIP's published list ("Prompt Engineering for ImageNet"), in its order.
    anchors = IMAGENET_TEMPLATES[0], IMAGENET_TEMPLATES[39], IMAGENET_TEMPLATES[-1]
    assert anchors == ("a bad photo of a {}.", "a photo of a {}.", "a tattoo of the {}.")
    explicit = encode_class_names("tiny_clip_for_test", NAMES, templates=list(IMAGENET_TEMPLATES))
    np.testing.assert_array_equal(default, explicit)
    np.testing.assert_allclose(np.linalg.norm(default, axis=1), 1, rtol=1e-5)
    assert not np.allclose(default, bare)


def test_mismatched_or_missing_spaces_are_refused(clip):
    with pytest.raises(ValueError, match="'test_tiny' has no text tower.*tiny_clip_for_test"):
        encode_class_names("test_tiny", NAMES)
    register_backbone("other_clip_for_test", lambda **kw: None, modality="image",
                      text_tower="tiny_clip_text_for_test", space="another")  # fmt: skip
    try:
        with pytest.raises(ValueError, match="embeds into space 'tiny', not 'another'"):
            encode_class_names("other_clip_for_test", NAMES)
    finally:
        unregister_backbone("other_clip_for_test")
    with pytest.raises(ValueError, match="needs a '\\{\\}'"):
        encode_class_names("tiny_clip_for_test", NAMES, templates=["a photo"])


def _data(n_per_class, seed):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 255, (n_per_class * len(NAMES), 32, 32, 3), dtype=np.uint8)
    return X, np.repeat(np.array(NAMES), n_per_class)


def test_blend_limits_zero_shot_and_fast_weights(clip):
    E = dict(zip(NAMES, encode_class_names("tiny_clip_for_test", NAMES), strict=True))
    X, y = _data(3, 0)
    X_test, _ = _data(5, 1)
    feats = FeatureExtractor("tiny_clip_for_test", device="cpu").transform(X_test)
    rows = np.stack([E[n] for n in sorted(NAMES)])
    cos = (feats / np.linalg.norm(feats, axis=1, keepdims=True)) @ rows.T
    zero_shot = np.array(sorted(NAMES))[cos.argmax(1)]
    common = {"backbone": "tiny_clip_for_test", "class_embeddings": E, "device": "cpu"}
    # N0 >> N: the prior's share is 1 - N / (N0 + N) ~ 1: CLIP's zero-shot classifier.
    prior_only = FAASTClassifier(prior="identity", prior_strength=1e12, **common).fit(X, y)
    np.testing.assert_array_equal(prior_only.predict(X_test), zero_shot)
    # N >> N0 (N0 = 0): the fast weights alone.
    fast = FAASTClassifier(prior="identity", prior_strength=0.0, **common).fit(X, y)
    alone = FAASTClassifier(**common).fit(X, y)
    np.testing.assert_allclose(fast.decision_function(X_test), alone.decision_function(X_test),
                               rtol=1e-6, atol=1e-8)  # fmt: skip


def test_text_embeddings_follow_an_overwritten_text_tower(clip):
    folder = clip[0]
    first = encode_class_names("tiny_clip_for_test", NAMES, templates=None)
    np.testing.assert_array_equal(
        encode_class_names("tiny_clip_for_test", NAMES, templates=None), first
    )

    def negated(*, pretrained, weights, image_size):
        tower = load_backbone(f"hf:{folder}")
        return Backbone(_Negate(tower.model), 16, "text", tokenizer=tower.tokenizer)

    register_backbone("tiny_clip_text_for_test", negated, overwrite=True, modality="text",
                      space="tiny")  # fmt: skip
    np.testing.assert_allclose(
        encode_class_names("tiny_clip_for_test", NAMES, templates=None), -first, atol=1e-6
    )


class _Negate(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, **tokens):
        return -self.inner(**tokens)


def test_text_spellings_of_class_embeddings(clip):
    from faast_sklearn.backbones import text_class_embeddings

    by_label = text_class_embeddings("tiny_clip_for_test", "text", NAMES, templates=None)
    bare = encode_class_names("tiny_clip_for_test", NAMES, templates=None)
    assert list(by_label) == NAMES
    np.testing.assert_array_equal(np.stack(list(by_label.values())), bare)
    named = text_class_embeddings(
        "tiny_clip_for_test", {0: "cat", 1: "dog"}, [0], templates=None
    )  # a mapping names classes, including ones without training rows
    np.testing.assert_allclose(named[1], bare[1], atol=1e-6)  # other padding: rounding
    vectors = {"cat": np.ones(16)}
    assert text_class_embeddings("tiny_clip_for_test", vectors, NAMES) is vectors
    with pytest.raises(ValueError, match="class_embeddings must be 'text'"):
        text_class_embeddings("tiny_clip_for_test", "txt", NAMES)
    with pytest.raises(ValueError, match="'test_tiny' has no text tower"):
        text_class_embeddings("test_tiny", "text", NAMES)


def test_classifier_with_text_class_embeddings(clip):
    X, y = _data(3, 0)
    X_test, _ = _data(5, 1)
    E = encode_class_names("tiny_clip_for_test", sorted(NAMES))  # the ImageNet ensemble
    common = {"backbone": "tiny_clip_for_test", "device": "cpu", "prior": "identity"}
    by_text = FAASTClassifier(class_embeddings="text", **common).fit(X, y)
    by_vectors = FAASTClassifier(
        class_embeddings=dict(zip(sorted(NAMES), E, strict=True)), **common
    )
    by_vectors = by_vectors.fit(X, y)
    np.testing.assert_allclose(
        by_text.decision_function(X_test), by_vectors.decision_function(X_test), rtol=1e-6
    )
    named = {name: f"a {name}" for name in NAMES + ["boat"]}  # "boat" has no training rows
    clf = FAASTClassifier(class_embeddings=named, **common).fit(X, y)
    assert "boat" in clf.classes_
    with pytest.raises(ValueError, match="has no text tower"):
        FAASTClassifier(backbone="test_tiny", class_embeddings="text").fit(X, y)
    # A text encoder: the names' own features are the way (the error shows it).
    with pytest.raises(ValueError, match=r"FeatureExtractor\('minilm'\)\.transform\(names\)"):
        FAASTClassifier(backbone="minilm", class_embeddings="text").fit(["a", "b"], [0, 1])
    with pytest.raises(ValueError, match="only for a backbone given by name"):
        FAASTClassifier(class_embeddings="text").fit(np.ones((4, 3)), [0, 1, 0, 1])


def test_registered_clip_pair_and_mismatched_dimensions_are_refused(clip):
    from faast_sklearn.backbones import get_backbone_meta

    assert text_tower_of("clip_vit_base") == "clip_vit_base_text"
    image, text = get_backbone_meta("clip_vit_base"), get_backbone_meta("clip_vit_base_text")
    assert image["space"] == text["space"] and image["n_features"] == text["n_features"] == 512
    register_backbone("wide_clip_for_test", lambda **kw: None, modality="image", n_features=32,
                      text_tower="tiny_clip_text_for_test", space="tiny")  # fmt: skip
    try:
        with pytest.raises(ValueError, match="gives 16-d embeddings, but backbone "
                           "'wide_clip_for_test' gives 32-d features"):  # fmt: skip
            encode_class_names("wide_clip_for_test", NAMES, templates=None)
    finally:
        unregister_backbone("wide_clip_for_test")


def test_text_embeddings_are_kept_in_the_package_cache(clip):
    from faast_sklearn import cache_info, clear_cache, config_context

    folder = clip[0]
    forward = []  # forward passes, counted by a hook (state the cache keys do not read)

    def counting(*, pretrained, weights, image_size):
        tower = load_backbone(f"hf:{folder}")
        return Backbone(tower.model, 16, "text", tokenizer=tower.tokenizer)

    register_backbone("counting_text_for_test", counting, modality="text", space="tiny")
    model = load_backbone("counting_text_for_test").model
    hook = model.register_forward_hook(lambda *_: forward.append(1))
    try:
        clear_cache()
        first = encode_class_names("counting_text_for_test", NAMES, templates=None)
        calls, before = len(forward), cache_info()
        assert calls > 0
        again = encode_class_names("counting_text_for_test", NAMES, templates=None)
        after = cache_info()
        np.testing.assert_array_equal(again, first)
        assert len(forward) == calls  # a hit: no forward pass
        assert after["hits"] == before["hits"] + 1 and after["misses"] == before["misses"]
        again[0] = 0.0  # the caller's copy: the cached embeddings are unchanged
        np.testing.assert_array_equal(
            encode_class_names("counting_text_for_test", NAMES, templates=None), first
        )
        with config_context(cache=False):  # the package's switch turns them off too
            clear_cache()
            encode_class_names("counting_text_for_test", NAMES, templates=None)
            encode_class_names("counting_text_for_test", NAMES, templates=None)
            assert cache_info()["entries"] == 0
            assert len(forward) == calls + 2
    finally:
        hook.remove()
        unregister_backbone("counting_text_for_test")
        clear_cache()


@pytest.mark.parametrize("seed", [0, 1])
def test_zero_rows_give_clips_zero_shot_classifier(tmp_path, seed):
    """partial_fit on zero rows with declared classes: N = 0, r = 0, CLIP's zero-shot argmax;
    rows streamed afterwards give what fit gives."""
    model, _ = make_tiny_clip(tmp_path, seed=seed)
    image, text = f"zs_clip_{seed}_for_test", f"zs_clip_text_{seed}_for_test"

    def image_factory(*, pretrained, weights, image_size):
        data_config = {"input_size": (3, 32, 32), "interpolation": "bicubic", "crop_pct": 1.0,
                       "crop_mode": "center", "mean": CLIP_MEAN, "std": CLIP_STD}  # fmt: skip
        return Backbone(_ImageTower(model), 16, "image", data_config)

    register_backbone(image, image_factory, modality="image", n_features=16, text_tower=text,
                      space=f"zs{seed}")  # fmt: skip
    register_backbone(text, lambda **kw: load_backbone(f"hf:{tmp_path}"), modality="text",
                      space=f"zs{seed}")  # fmt: skip
    try:
        X_test, _ = _data(6, 10 + seed)
        common = {"backbone": image, "class_embeddings": "text", "prior": "identity",
                  "device": "cpu"}  # fmt: skip
        clf = FAASTClassifier(**common).partial_fit(X_test[:0], [], classes=NAMES)
        assert clf.n_samples_seen_ == 0 and clf.n_features_in_ == 16
        feats = FeatureExtractor(image, device="cpu").transform(X_test)
        E = encode_class_names(image, sorted(NAMES))  # CLIP's ImageNet ensemble, by default
        cos = (feats / np.linalg.norm(feats, axis=1, keepdims=True)) @ E.T
        np.testing.assert_array_equal(clf.predict(X_test), np.array(sorted(NAMES))[cos.argmax(1)])
        # A mapping label -> name declares classes, including ones that never get a row.
        named = {n: f"a {n}" for n in NAMES + ["boat"]}
        by_name = FAASTClassifier(**{**common, "class_embeddings": named})
        by_name.partial_fit(X_test[:0], [])
        E5 = encode_class_names(image, [named[n] for n in sorted(named)])
        cos5 = (feats / np.linalg.norm(feats, axis=1, keepdims=True)) @ E5.T
        np.testing.assert_array_equal(
            by_name.predict(X_test), np.array(sorted(named))[cos5.argmax(1)]
        )
        X, y = _data(3, seed)
        clf.partial_fit(X[:5], y[:5]).partial_fit(X[5:], y[5:])
        whole = FAASTClassifier(**common).fit(X, y)
        np.testing.assert_allclose(clf.decision_function(X_test), whole.decision_function(X_test),
                                   rtol=1e-6, atol=1e-8)  # fmt: skip
    finally:
        unregister_backbone(image)
        unregister_backbone(text)


def test_zero_rows_with_timm_clip_image_tower(tmp_path):
    """The registered CLIP image tower (timm's CLIP ViT-B/16 with its projection, random
    weights) paired with a random CLIP text tower of its 512-d space."""
    make_tiny_clip(tmp_path, seed=2, projection_dim=512)

    def image_factory(*, pretrained, weights, image_size):
        return load_backbone(BackboneSpec("clip_vit_base", image_size=32), pretrained=False)

    register_backbone("timm_clip_for_test", image_factory, modality="image", n_features=512,
                      text_tower="timm_clip_text_for_test", space="timm-test")  # fmt: skip
    register_backbone("timm_clip_text_for_test", lambda **kw: load_backbone(f"hf:{tmp_path}"),
                      modality="text", space="timm-test")  # fmt: skip
    try:
        X_test, _ = _data(3, 20)
        clf = FAASTClassifier(backbone="timm_clip_for_test", class_embeddings="text",
                              prior="identity", device="cpu")  # fmt: skip
        clf.partial_fit(X_test[:0], [], classes=NAMES)
        feats = FeatureExtractor("timm_clip_for_test", device="cpu").transform(X_test)
        E = encode_class_names("timm_clip_for_test", sorted(NAMES))
        assert feats.shape == (12, 512) and E.shape == (4, 512)
        cos = (feats / np.linalg.norm(feats, axis=1, keepdims=True)) @ E.T
        np.testing.assert_array_equal(clf.predict(X_test), np.array(sorted(NAMES))[cos.argmax(1)])
    finally:
        unregister_backbone("timm_clip_for_test")
        unregister_backbone("timm_clip_text_for_test")
