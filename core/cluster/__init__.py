"""Cluster adapters: the Reader/Writer ports and their live and offline implementations."""
