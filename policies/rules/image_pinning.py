"""GP010 image-pinning: images tagged `latest` or not tagged at all; digests where required.

A tag is a pointer that moves: `latest` (which is also what an untagged reference means) can
change under a running workload, so two nodes may run different code and a rollback returns to
whatever the tag points at now. Those are errors. Where the configuration asks for digests
(option `requireDigest: true`, meant for the production profile), an image without a well-formed
`@sha256:` digest is a warning. Every container, init container and ephemeral container of the
built-in workload kinds is checked, on objects the pull request creates, changes or moves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from core.findings import Finding, Severity
from policies.base import RuleMeta, finding
from policies.input import PolicyInput
from policies.rules.images import parse_image
from policies.rules.workloads import containers

__all__ = ["RULE"]

META = RuleMeta(
    id="GP010",
    title="image-pinning",
    severity=Severity.ERROR,
    summary="Images must carry a tag other than latest; a digest where the profile requires it.",
    docs=(
        "Pin each image to a release tag (`ghcr.io/org/app:1.4.2`) or, better, to a digest"
        " (`ghcr.io/org/app:1.4.2@sha256:...`). Flux's image automation can keep either"
        " up to date."
    ),
)


@dataclass(frozen=True)
class _ImagePinning:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        for change in policy_input.changes:
            if change.object is None:
                continue
            require_digest = (
                policy_input.option(self.meta.id, "requireDigest", False, profile=change.profile)
                is True
            )
            for path, container in containers(change.object):
                image = container.get("image")
                if not isinstance(image, str) or not image:
                    continue
                ref = parse_image(image)
                if ref.pinned:
                    continue
                where = f"{change.ref} {path}.image {image}"
                if not ref.tag or ref.tag == "latest":
                    what = "is not tagged (it means latest)" if not ref.tag else "uses latest"
                    yield finding(
                        self.meta,
                        f"{where} {what}: the image can change under the workload",
                        change=change,
                    )
                elif require_digest:
                    yield finding(
                        self.meta,
                        f"{where} has no digest, which this profile requires",
                        change=change,
                        severity=Severity.WARNING,
                    )


RULE = _ImagePinning()
