#!/usr/bin/env bash
# Debian packages for the image test (tests/deploy/test_image.py): buildah builds the Dockerfile
# without a Docker engine (chroot isolation, so no OCI runtime is needed), mmdebstrap makes the
# Debian base image it builds on. Installs only what is missing: a second run costs nothing.
# The Python tools (kubectl, hadolint, kubernetes-validate) come from setup.py's `deploy` extra.
set -euo pipefail

missing=()
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-image-tools: ${missing[*]} missing; install with apt-get as root (Debian 12+)" >&2
    exit 1
fi
echo "install-image-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A new machine may have no package lists, or stale ones.
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
