"""`make weights`: fetch the real openaudio-s1-mini checkpoint from the model hub into `checkpoints/<name>/`.

The files land in the layout `voicereel.engine.checkpoints` loads, and the result is inspected before this
returns, so a partial download fails here rather than inside Triton. (The build machines of this project cannot
reach the hub; tests cover the offline failure, the real download has to run where the hub is reachable.)

    python -m voicereel.engine.weights --out checkpoints/openaudio-s1-mini [--repo fishaudio/openaudio-s1-mini]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from voicereel.engine.checkpoints import (
    CODEC_FILE,
    CONFIG_FILE,
    MODEL_FILE,
    SPECIAL_TOKENS_FILE,
    TOKENIZER_FILE,
    CheckpointError,
    CheckpointInfo,
    inspect_checkpoint,
)

DEFAULT_REPO = "fishaudio/openaudio-s1-mini"
FILES = (MODEL_FILE, CODEC_FILE, CONFIG_FILE, TOKENIZER_FILE, SPECIAL_TOKENS_FILE)


class WeightsError(RuntimeError):
    pass


def fetch_weights(dest: Path, repo_id: str = DEFAULT_REPO, revision: str | None = None) -> CheckpointInfo:
    """Download the checkpoint files (the repository is gated: `HF_TOKEN` must hold an accepted token)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    dest.mkdir(parents=True, exist_ok=True)
    try:
        snapshot_download(
            repo_id, revision=revision, local_dir=dest, allow_patterns=list(FILES), token=os.environ.get("HF_TOKEN")
        )
    except LocalEntryNotFoundError as exc:
        raise WeightsError(f"cannot reach the model hub for {repo_id} (offline or no network): {exc}") from exc
    except HfHubHTTPError as exc:
        raise WeightsError(f"the model hub refused {repo_id}: {exc} (gated: accept its terms, set HF_TOKEN)") from exc
    try:
        return inspect_checkpoint(dest)
    except CheckpointError as exc:
        raise WeightsError(f"downloaded files are incomplete: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voicereel.engine.weights", description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repo", default=DEFAULT_REPO)
    parser.add_argument("--revision", default=None)
    args = parser.parse_args(argv)
    try:
        info = fetch_weights(args.out, args.repo, args.revision)
    except WeightsError as exc:
        print(f"make weights failed: {exc}", file=sys.stderr)
        return 1
    print(f"{info.kind} checkpoint in {info.root} ({info.total_bytes / 1e9:.2f} GB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
