#!/usr/bin/env bash
# Prove the package like a user: build the wheel and the sdist, install the wheel into clean
# virtualenvs (no extras, [testing], [service], [fastapi]) and check what each brought, then run the
# downstream example project (examples/downstream) against the installed [testing] extra.
# Everything happens under a temporary folder, removed at the end. `make package-test`.
#
#   PYTHON   the interpreter with `build` and `packaging` (the test extra); default .venv/bin/python
#   PYTHON3  the interpreter the clean virtualenvs are made from; default python3
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
PYTHON3="${PYTHON3:-python3}"
CHECKS="$ROOT/scripts/package_checks.py"

if ! "$PYTHON" -c "import build, packaging" 2>/dev/null; then
    echo "check-package: $PYTHON lacks build/packaging: pip install -e '.[test]' (or make)" >&2
    exit 1
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/check-package.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
step() { printf '\n== %s\n' "$*"; }

step "build (sdist, then the wheel from the sdist)"
"$PYTHON" -m build --outdir "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log" >&2; exit 1; }
"$PYTHON" "$CHECKS" artifacts "$WORK/dist"
WHEEL="$(echo "$WORK"/dist/*.whl)"

# new_venv NAME: a clean virtualenv; its distributions before any install go to NAME.baseline.
new_venv() {
    "$PYTHON3" -m venv "$WORK/$1"
    "$PYTHON" "$CHECKS" dists "$WORK/$1" >"$WORK/$1.baseline"
}
pip_install() {
    local venv="$1"
    shift
    # (This machine's pip configuration names index folders that may not exist: pip warns
    # about each on every install. Only that line is dropped; everything else pip says stays.)
    "$WORK/$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
# count NAME: distributions installed in NAME beyond its baseline (pip list minus pip, setuptools).
count() {
    echo $(($("$PYTHON" "$CHECKS" dists "$WORK/$1" | wc -l) - $(wc -l <"$WORK/$1.baseline")))
}

step "the wheel alone (no extras)"
new_venv bare
pip_install bare "$WHEEL"
"$PYTHON" "$CHECKS" installed "$WORK/bare" "$WORK/bare.baseline"
(cd "$WORK" && "$WORK/bare/bin/python" "$CHECKS" imports)

step "the wheel with [service]"
new_venv service
pip_install service "$WHEEL[service]"
"$PYTHON" "$CHECKS" installed "$WORK/service" "$WORK/service.baseline" service

step "the wheel with [fastapi] (which brings [asgi]): the ASGI adapter imports"
new_venv asgi
pip_install asgi "$WHEEL[fastapi]"
"$PYTHON" "$CHECKS" installed "$WORK/asgi" "$WORK/asgi.baseline" fastapi
"$WORK/asgi/bin/python" -c "import compass_auth.asgi, compass_auth.asgi.fastapi" \
    && echo "compass-auth[fastapi]: compass_auth.asgi and compass_auth.asgi.fastapi import"

step "the wheel with [testing], then the downstream example project against it"
new_venv downstream
pip_install downstream "$WHEEL[testing]"
"$PYTHON" "$CHECKS" installed "$WORK/downstream" "$WORK/downstream.baseline" testing
TESTING_COUNT="$(count downstream)"
# A copy, so the build leaves nothing in the checkout and its tests import the installed
# inventory_service, not the source folder. Naming the wheel again pins compass-auth to it.
cp -r "$ROOT/examples/downstream" "$WORK/example"
pip_install downstream "$WHEEL[testing]" "$WORK/example[test]"
(cd "$WORK/example" && "$WORK/downstream/bin/pytest" -p no:cacheprovider --durations=3)

step "distributions installed, beyond a fresh virtualenv's own"
echo "compass-auth wheel, no extras: $(count bare)"
echo "compass-auth[service]:         $(count service)"
echo "compass-auth[fastapi]:         $(count asgi)"
echo "compass-auth[testing]:         $TESTING_COUNT"
