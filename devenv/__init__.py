"""Development environment: pinned Go tool builds, the local control plane and a local git server.

Used by the `tidegate dev` commands and the test suite; the engine and the deployables never
import it.
"""
