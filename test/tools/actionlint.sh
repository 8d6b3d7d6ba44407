#!/usr/bin/env bash
# Validates every GitHub Actions workflow with actionlint, built from its Go module (pinned)
# into the tools cache on first use.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
version=v1.7.12
bin="${XDG_CACHE_HOME:-$HOME/.cache}/service-discovery/actionlint-$version"
if [ ! -x "$bin/actionlint" ]; then
    command -v go >/dev/null || { echo "go is required to build actionlint" >&2; exit 1; }
    echo "[tools] building actionlint $version" >&2
    mkdir -p "$bin"
    GOBIN="$bin" go install "github.com/rhysd/actionlint/cmd/actionlint@$version"
fi
cd "$root"
"$bin/actionlint" -no-color .github/workflows/*.yml
echo "actionlint: $(ls .github/workflows/*.yml | wc -l) workflows OK"
