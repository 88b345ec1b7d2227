#!/usr/bin/env bash
# Debian's Go toolchain and the two libraries of the benchmark's Go peer, installed only when
# missing (benchmarks/go_peer.py builds the peer from them, offline). Never fatal: without
# them the benchmark says that the Go peer was not measured and prints no ratio against it.
set -u
packages=(golang-go golang-github-coreos-go-oidc-dev golang-github-gin-gonic-gin-dev)
if ! command -v dpkg-query >/dev/null; then
	echo "bench: not a Debian system; the benchmark runs without its Go peer" >&2
	exit 0
fi
missing=()
for package in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
apt-get install -y --no-install-recommends "${missing[@]}" ||
	(apt-get update && apt-get install -y --no-install-recommends "${missing[@]}") ||
	echo "bench: could not install ${missing[*]}; the benchmark runs without its Go peer" >&2
exit 0
