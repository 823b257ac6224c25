"""Tests of the preview formats: the JSON contract and the pull-request comment."""
