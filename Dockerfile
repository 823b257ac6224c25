# Tidegate image: the Python package plus the pinned kustomize and helm it renders with.
# The Go tools are built from the same tools/*/go.mod pins the tests use. Without Docker,
# `scripts/dev image` builds and tests an equivalent image (devenv/image.py, docs/testing.md).
FROM golang:1.26-bookworm AS tools
ENV GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly"
COPY tools/kustomize /src/kustomize
COPY tools/helm /src/helm
RUN cd /src/kustomize && go build -ldflags "-s -w" -o /out/kustomize sigs.k8s.io/kustomize/kustomize/v5 \
 && cd /src/helm && go build -ldflags "-s -w" -o /out/helm helm.sh/helm/v3/cmd/helm

FROM python:3.11-slim-bookworm
# git fetches GitRepositories; openssh-client carries their ssh:// URLs, ca-certificates https.
RUN apt-get update && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 65532 --create-home tidegate
COPY --from=tools /out/kustomize /out/helm /usr/local/bin/
WORKDIR /opt/tidegate
COPY pyproject.toml README.md ./
COPY core core
COPY app app
COPY reconciler reconciler
COPY policies policies
COPY devenv devenv
COPY cli cli
RUN pip install --no-cache-dir .
USER 65532
# `tidegate serve` (the pull-request app under gunicorn) listens here; see charts/tidegate.
EXPOSE 8080
ENTRYPOINT ["tidegate"]
CMD ["--help"]
