#!/usr/bin/env bash
# kubectl for tests/devcluster/test_kubectl.py, which runs the real client against the cluster
# emulator and, under CI=true, fails when there is none. It uses the Debian package's
# /usr/bin/kubectl (override with KUBECTL=path). Installs only what is missing: a second run
# costs nothing.
set -euo pipefail

kubectl="${KUBECTL:-/usr/bin/kubectl}"
if [ -x "$kubectl" ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-kubectl: $kubectl is missing and this is not root with apt-get: the kubectl" \
        "tests (tests/devcluster/test_kubectl.py) will be skipped; install Debian's kubectl" \
        "package, or run as root, to run them" >&2
    # Under CI they are required: fail here rather than let the tests skip.
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# A new machine may have no package lists, or stale ones.
apt-get update -qq
# The package is `kubectl` where the configured sources carry it; Debian's own archive calls
# its build `kubernetes-client`.
package=""
for candidate in kubectl kubernetes-client; do
    # Read the whole policy first: grep -q would close the pipe early (pipefail).
    policy="$(apt-cache policy "$candidate" 2>/dev/null)"
    if grep -q 'Candidate: [0-9]' <<<"$policy"; then
        package="$candidate"
        break
    fi
done
if [ -z "$package" ]; then
    echo "install-kubectl: no kubectl package in the configured apt sources" >&2
    exit 1
fi
echo "install-kubectl: installing $package"
apt-get install -y -qq --no-install-recommends "$package" >/dev/null
if [ ! -x "$kubectl" ]; then
    echo "install-kubectl: installed $package, but $kubectl is still missing" >&2
    exit 1
fi
# `create token` needs 1.24 and `auth whoami` (SelfSubjectReview v1) 1.28; the test reports an
# older client as the cause of its failure, so this only shows the version.
"$kubectl" version --client 2>/dev/null | head -n 1 || true
