#!/usr/bin/env bash
# Run the store conformance suite against the file backend in a fresh
# temporary directory.
set -euo pipefail
exe=$1
dir=$(mktemp -d /tmp/sm-conformance-XXXXXX)
trap 'rm -rf "$dir"' EXIT
SM_STORE_URL="$dir/" "$exe"
