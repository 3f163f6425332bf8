"""The `voicereel` command line (entry point `voicereel = "voicereel.cli:app"`)."""

from voicereel.cli.app import app

__all__ = ["app"]
