"""A byte-level vocabulary for the tiny offline tokenizers of the text-model tests."""


def byte_chars():
    """GPT-2's byte -> printable character table (a byte-level vocabulary with no merges); CLIP's
    byte-level BPE uses the same table."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = [b for b in range(256) if b not in keep]
    chars = {b: chr(b) for b in keep}
    chars.update({b: chr(256 + i) for i, b in enumerate(extra)})
    return [chars[b] for b in range(256)]
