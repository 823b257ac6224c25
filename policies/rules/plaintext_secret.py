"""GP011 plaintext-secret: a Secret is committed without SOPS encryption.

Flux decrypts SOPS-encrypted Secrets when it applies them (`spec.decryption.provider: sops`), so
a Secret's values never need to be in Git in clear text, and once pushed they are in the
history for good. The rule checks structure, not entropy: a Secret rendered by a Kustomization
from the repository with values but without SOPS metadata is an error. Secrets that kustomize
generates (a content-hash suffix on the name) are a warning when none of their keys carries the
`sops_` metadata an encrypted env file produces: an encrypted file read whole (`files:`) cannot
be told apart from a plain one after rendering. HelmRelease output is not checked (values
rendered into a chart are not a committed Secret). The rule reads only key names and the
presence of SOPS metadata, never a value, and an annotation on the Secret cannot waive it (the
waiver would be committed with the plaintext); only the repository's waiver file can.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from core.findings import Finding, Severity
from core.model import UnitKind
from policies.base import RuleMeta, finding
from policies.input import PolicyInput

__all__ = ["RULE"]

META = RuleMeta(
    id="GP011",
    title="plaintext-secret",
    severity=Severity.ERROR,
    summary="Secrets must be committed SOPS-encrypted.",
    docs=(
        "Encrypt the Secret with `sops --encrypt --encrypted-regex '^(data|stringData)$'` and"
        " set `spec.decryption` on the Kustomization; rotate any value that was pushed in clear"
        " text, because it stays in the Git history."
    ),
    annotation_waivable=False,
)
_GENERATED = re.compile(r"-[2456789bcdfghkmt]{10}$")


@dataclass(frozen=True)
class _PlaintextSecret:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        for change in policy_input.changes:
            body = change.object
            if body is None or (change.ref.group, change.ref.kind) != ("", "Secret"):
                continue
            if change.unit.kind is not UnitKind.KUSTOMIZATION or "sops" in body:
                continue
            keys = [
                str(key)
                for field in ("data", "stringData")
                if isinstance(body.get(field), Mapping)
                for key in body[field]
            ]
            if not keys:
                continue
            if _GENERATED.search(change.ref.name):
                if any(key.startswith("sops_") for key in keys):
                    continue
                yield finding(
                    self.meta,
                    f"{change.ref} is generated from files that show no SOPS encryption"
                    f" (keys {', '.join(sorted(keys)[:5])})",
                    change=change,
                    severity=Severity.WARNING,
                )
                continue
            yield finding(
                self.meta,
                f"{change.ref} is committed without SOPS encryption"
                f" ({len(keys)} value(s) in clear text in the repository)",
                change=change,
            )


RULE = _PlaintextSecret()
