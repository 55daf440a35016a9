#!/usr/bin/env bash
# Run the store conformance suite against the file backend in a fresh
# temporary directory, which the suite also reads directly (temp files of
# failed puts must not stay behind).
set -euo pipefail
exe=$1
dir=$(mktemp -d /tmp/sm-conformance-XXXXXX)
trap 'rm -rf "$dir"' EXIT
SM_EXPECT_CAPS=dirs,links,mode,local SM_STORE_RAW_DIR="$dir" SM_STORE_URL="$dir/" "$exe"
