"""The end-to-end `preview` fixture, shared with the preview tests."""

from tests.preview.conftest import preview

__all__ = ["preview"]
