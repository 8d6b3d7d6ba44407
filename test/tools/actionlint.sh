#!/usr/bin/env bash
# Validates every GitHub Actions workflow with actionlint, built from its Go module (pinned)
# into the tools cache on first use. --build-only: only the build (test/tools/install.sh starts it
# first, in the background of npm test and .ci/run); a check that finds a build in progress waits
# for it (a lock of its own) instead of building it a second time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
version=v1.7.12
cache="${XDG_CACHE_HOME:-$HOME/.cache}/service-discovery"
bin="$cache/actionlint-$version"
case "${1:-}" in
    --build-only | "") ;;
    *) echo "test/tools/actionlint.sh: unknown option ${1} (allowed: --build-only)" >&2; exit 2 ;;
esac
if [ ! -x "$bin/actionlint" ]; then
    mkdir -p "$cache"
    exec 8>"$cache/.actionlint.lock"
    flock 8
    if [ ! -x "$bin/actionlint" ]; then
        command -v go >/dev/null || { echo "go is required to build actionlint" >&2; exit 1; }
        echo "[tools] building actionlint $version" >&2
        mkdir -p "$bin.tmp"
        GOBIN="$bin.tmp" go install "github.com/rhysd/actionlint/cmd/actionlint@$version"
        rm -rf "$bin" && mv "$bin.tmp" "$bin"
        echo "[tools] built actionlint $version" >&2
    fi
    exec 8>&-
fi
[ "${1:-}" != "--build-only" ] || exit 0
cd "$root"
workflows=(.github/workflows/*.yml)
"$bin/actionlint" -no-color "${workflows[@]}"
echo "actionlint: ${#workflows[@]} workflows OK"
