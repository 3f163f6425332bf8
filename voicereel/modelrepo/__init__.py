"""Triton model repository builder: configs from templates and declared knobs, filled strictly.

`build_repository(dest, checkpoint_dir, overrides)`; CLI: `python -m voicereel.modelrepo build --checkpoint
checkpoints/tiny --out .run/model_repository [--set codec_decoder.max_batch_size=32]`.
"""

from voicereel.modelrepo.build import build_repository, render_configs
from voicereel.modelrepo.knobs import Knob, KnobError

__all__ = ["Knob", "KnobError", "build_repository", "render_configs"]
