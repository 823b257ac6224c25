"""The GitRepository source controller: Flux's source half, for `tidegate reconcile`.

Modules, one job each: `spec` (the object, typed), `refs` (which ref, which revision string),
`auth` (the Secret's credentials, handed to git only), `checkout` (the bounded shallow fetch
into a per-object cache), `archive` (the deterministic tar.gz), `storage` (where artifacts live,
garbage collection), `server` (artifacts served read-only over HTTP), `status` (source-controller's
conditions) and `gitrepository` (one reconcile pass: `reconcile_git_repository`).
"""
