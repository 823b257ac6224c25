"""Reading a Flux repository: git revisions, discovery of Flux objects, file ownership."""
