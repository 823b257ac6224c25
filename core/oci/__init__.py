"""OCI registries: a guarded distribution-API client and Flux's OCI source semantics.

`reference` parses `oci://` URLs, tags and digests; `registry` talks the distribution API through
`core.fetch` (token challenge, manifests and indexes, tags, digest-verified blobs, a cache by
digest); `unpack` untars a layer safely; `source` resolves OCIRepository objects and charts in OCI
HelmRepositories as source-controller does. Nothing here runs a tool or knows about rendering.
"""
