"""Tests of the OCI client and Flux OCI source semantics."""
