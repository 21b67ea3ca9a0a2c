"""Decoder language models as text backbones, offline, with a small random GPT-2."""

import json
import time
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from _hf_vocab import byte_chars  # noqa: E402

from faast_sklearn import FAASTClassifier  # noqa: E402
from faast_sklearn.backbones import (  # noqa: E402
    BackboneSpec,
    get_backbone_meta,
    load_backbone,
)
from faast_sklearn.features import FeatureExtractor  # noqa: E402

TEXTS = ["a", "hello there", "the film was long, slow and very good", "bad."]


def make_tiny_gpt2(folder, *, n_layer=2, n_positions=64):
    vocab = {c: i for i, c in enumerate(byte_chars())}
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = transformers.GPT2Tokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    end = len(vocab) - 1
    config = transformers.GPT2Config(
        vocab_size=len(vocab), n_embd=32, n_layer=n_layer, n_head=2, n_positions=n_positions,
        bos_token_id=end, eos_token_id=end, architectures=["GPT2LMHeadModel"],
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = transformers.GPT2Model(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_gpt2")
    model, tokenizer = make_tiny_gpt2(folder)
    return folder, model, tokenizer


def _hand(model, tokenizer, text, *, layer=None, pooling="last"):
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    h = out.last_hidden_state if layer is None else out.hidden_states[layer]
    return (h[0, -1] if pooling == "last" else h[0].mean(0)).numpy()


@pytest.mark.parametrize("pooling,layer", [("last", None), ("mean", None), ("last", 1)])
def test_pooling_equals_a_hand_computation_on_each_text_alone(gpt2, pooling, layer):
    folder, model, tokenizer = gpt2
    spec = BackboneSpec(f"hf:{folder}", model_kwargs={"pooling": pooling, "layer": layer})
    feats = FeatureExtractor(spec, device="cpu", batch_size=4).transform(TEXTS)
    assert feats.shape == (len(TEXTS), 32)
    hand = np.stack([_hand(model, tokenizer, t, layer=layer, pooling=pooling) for t in TEXTS])
    # A batch pads the short texts; left padding with masked positions changes nothing.
    np.testing.assert_allclose(feats, hand, rtol=1e-4, atol=1e-5)


def test_padding_side_does_not_change_the_features(gpt2):
    folder = gpt2[0]
    backbone = load_backbone(f"hf:{folder}")
    assert "decoder" in backbone.description and backbone.n_features == 32
    left = backbone.tokenizer(TEXTS)
    assert (left["attention_mask"][:, -1] == 1).all()  # left padding: the last token is real
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token, tokenizer.padding_side = tokenizer.eos_token, "right"
    right = tokenizer.pad({"input_ids": [tokenizer(t)["input_ids"] for t in TEXTS]},
                          return_tensors="pt")  # fmt: skip
    assert not (right["attention_mask"][:, -1] == 1).all()
    with torch.no_grad():
        a = backbone.model(left["input_ids"], left["attention_mask"])
        b = backbone.model(right["input_ids"], right["attention_mask"])
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_long_texts_are_cut_with_a_warning_that_counts_them(gpt2):
    folder, model, tokenizer = gpt2
    spec = BackboneSpec(f"hf:{folder}", model_kwargs={"max_length": 8})
    texts = ["short", "x" * 20, "y" * 9, "z" * 8]
    with pytest.warns(UserWarning, match="2 of 4 texts are longer than 8 tokens"):
        feats = FeatureExtractor(spec, device="cpu", cache=False).transform(texts)
    np.testing.assert_allclose(feats[1], _hand(model, tokenizer, "x" * 8), rtol=1e-4, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FeatureExtractor(spec, device="cpu", cache=False).transform(["short", "z" * 8])


def test_bad_decoder_arguments_are_named(gpt2):
    folder = gpt2[0]
    with pytest.raises(ValueError, match="layer must be an int in \\[-3, 2\\]"):
        load_backbone(BackboneSpec(f"hf:{folder}", model_kwargs={"layer": 5}))
    with pytest.raises(ValueError, match="pooling of a decoder must be 'last' or 'mean'"):
        load_backbone(BackboneSpec(f"hf:{folder}", model_kwargs={"pooling": "cls"}))
    with pytest.raises(TypeError, match="normalize"):
        load_backbone(BackboneSpec(f"hf:{folder}", model_kwargs={"normalize": True}))


def test_decoder_features_fit_a_classifier(gpt2):
    folder = gpt2[0]
    texts = ["good", "great", "fine film", "bad", "awful", "poor film"] * 3
    y = [1, 1, 1, 0, 0, 0] * 3
    clf = FAASTClassifier(backbone=f"hf:{folder}", device="cpu").fit(texts, y)
    assert clf.n_features_in_ == 32
    assert clf.predict(texts).shape == (18,)


def test_gpt2_names_fail_fast_offline_with_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    assert get_backbone_meta("gpt2_xl")["n_features"] == 1600
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="hf download openai-community/gpt2"):
        load_backbone("gpt2")
    assert time.perf_counter() - start < 10


def make_tiny_causal_lm(folder, family):
    """A random two-layer Llama or Qwen2 causal LM (grouped-query attention, rotary positions)
    saved as a hub checkpoint would be, with a byte-level tokenizer."""
    tokenizer = make_tiny_gpt2(folder)[1]  # the tokenizer files; the GPT-2 weights are replaced
    for name in ("model.safetensors", "pytorch_model.bin", "config.json"):
        (folder / name).unlink(missing_ok=True)
    end = tokenizer.eos_token_id
    sizes = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 max_position_embeddings=64, bos_token_id=end, eos_token_id=end)  # fmt: skip
    if family == "llama":
        config, cls = transformers.LlamaConfig(**sizes), transformers.LlamaForCausalLM
    else:
        config, cls = transformers.Qwen2Config(**sizes), transformers.Qwen2ForCausalLM
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = cls(config).eval()
    model.save_pretrained(folder)
    return model.model, tokenizer  # the transformer under the LM head


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_llama_and_qwen_families_through_hf_folders(tmp_path, family):
    model, tokenizer = make_tiny_causal_lm(tmp_path, family)
    backbone = load_backbone(f"hf:{tmp_path}")
    assert "decoder" in backbone.description and backbone.n_features == 32
    feats = FeatureExtractor(f"hf:{tmp_path}", device="cpu", batch_size=4).transform(TEXTS)
    hand = np.stack([_hand(model, tokenizer, t) for t in TEXTS])  # each text alone, no padding
    np.testing.assert_allclose(feats, hand, rtol=1e-4, atol=1e-5)
    spec = BackboneSpec(f"hf:{tmp_path}", model_kwargs={"pooling": "mean", "layer": 1})
    feats = FeatureExtractor(spec, device="cpu", batch_size=4).transform(TEXTS)
    hand = np.stack([_hand(model, tokenizer, t, layer=1, pooling="mean") for t in TEXTS])
    np.testing.assert_allclose(feats, hand, rtol=1e-4, atol=1e-5)


def test_bfloat16_forward_pass_of_a_decoder(gpt2):
    """precision="auto" is bfloat16 on CUDA; the same autocast path, run on the CPU."""
    folder = gpt2[0]
    full = FeatureExtractor(f"hf:{folder}", device="cpu", cache=False).transform(TEXTS)
    half = FeatureExtractor(f"hf:{folder}", device="cpu", precision="bfloat16", cache=False)
    half = half.transform(TEXTS)
    assert half.dtype == np.float32 and not np.array_equal(half, full)
    np.testing.assert_allclose(half, full, rtol=0.1, atol=0.1 * np.abs(full).max())


@pytest.mark.gpu
def test_decoder_on_cuda_in_bfloat16(gpt2):
    folder = gpt2[0]
    full = FeatureExtractor(f"hf:{folder}", device="cpu", cache=False).transform(TEXTS)
    cuda = FeatureExtractor(f"hf:{folder}", device="cuda", cache=False).transform(TEXTS)
    np.testing.assert_allclose(cuda, full, rtol=0.1, atol=0.1 * np.abs(full).max())


def test_a_registered_gpt2_name_takes_a_local_folder_as_weights(gpt2):
    folder = gpt2[0]
    by_name = FeatureExtractor("gpt2_xl", weights=folder, device="cpu", cache=False)
    by_path = FeatureExtractor(f"hf:{folder}", device="cpu", cache=False)
    np.testing.assert_array_equal(by_name.transform(TEXTS), by_path.transform(TEXTS))
    clf = FAASTClassifier(backbone=by_name).fit(["good", "bad", "fine", "awful"], [1, 0, 1, 0])
    assert clf.n_features_in_ == 32
