#!/usr/bin/env bash
# Builds the release archive dist/mqtt-proxy-<version>-linux-x64.tar.gz:
#   mqtt-proxy-<version>-linux-x64/
#     mqtt-proxy                 the single binary from `deno task compile`
#     conf/mqtt.properties       the documented default configuration
#     conf/mqtt-proxy.service    the systemd unit
#     README.md
#     docs/operations.md         installed as /usr/local/share/doc/mqtt-proxy/operations.md (the unit's Documentation=)
# plus a .sha256 file next to it.
#
# `deno compile` needs denort, Deno's runtime-only binary, of exactly the running Deno version. Deno takes
# it from $DENORT_BIN (the unzipped binary), else from $DENO_DIR/dl/release/v<version>/denort-<target>.zip,
# else downloads it from dl.deno.land. Without network access and without either of the first two, the
# compile fails; this script then says so and exits 1.
#
# Usage: scripts/release.sh            (from anywhere; works in the repository root)
# Environment: DENORT_BIN  path of a denort binary matching `deno --version`
#              DIST_DIR    where the archive goes (default: <repo>/dist)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DIST_DIR="${DIST_DIR:-$ROOT/dist}"

fail() {
  echo "release.sh: $*" >&2
  exit 1
}

# Deno from PATH, or through npm (npx -y deno@<version>, as the README runs it). The tasks that this script
# runs call `deno` themselves, so the resolved binary's directory goes first on PATH.
DENO_PINNED=2.9.6
if command -v deno >/dev/null; then
  DENO=(deno)
elif command -v npx >/dev/null; then
  DENO=(npx -y "deno@$DENO_PINNED")
else
  fail "neither deno nor npx is on PATH"
fi
DENO_EXEC="$("${DENO[@]}" eval --quiet 'console.log(Deno.execPath())' 2>/dev/null)" || fail "cannot run ${DENO[*]}"
export PATH="$(dirname "$DENO_EXEC"):$PATH"
VERSION="$(sed -n 's/^export const VERSION = "\([^"]*\)";$/\1/p' main.ts)"
[[ -n "$VERSION" ]] || fail "cannot read VERSION from main.ts"
JSON_VERSION="$(sed -n 's/^  "version": "\([^"]*\)",$/\1/p' deno.json)"
[[ "$VERSION" == "$JSON_VERSION" ]] || fail "main.ts VERSION $VERSION differs from deno.json version $JSON_VERSION"
DENO_VERSION="$("$DENO_EXEC" --version | sed -n 's/^deno \([0-9.]*\).*/\1/p')"
NAME="mqtt-proxy-$VERSION-linux-x64"

if [[ -n "${DENORT_BIN:-}" ]]; then
  [[ -x "$DENORT_BIN" ]] || fail "DENORT_BIN=$DENORT_BIN is not an executable file (it must be the unzipped denort $DENO_VERSION binary)"
  echo "release.sh: compiling with DENORT_BIN=$DENORT_BIN"
else
  DENO_DIR_PATH="${DENO_DIR:-$(NO_COLOR=1 "$DENO_EXEC" info 2>/dev/null | sed -n "s/^DENO_DIR location: *//p")}"
  ZIP="$DENO_DIR_PATH/dl/release/v$DENO_VERSION/denort-x86_64-unknown-linux-gnu.zip"
  if [[ -f "$ZIP" ]]; then
    echo "release.sh: compiling with the cached $ZIP"
  else
    echo "release.sh: no DENORT_BIN and no cached $ZIP: deno compile will try to download denort" >&2
  fi
fi

rm -f dist/mqtt-proxy
if ! "$DENO_EXEC" task compile; then
  cat >&2 <<MSG
release.sh: 'deno task compile' FAILED, no release was built.
  deno compile needs denort $DENO_VERSION (Deno's runtime-only binary). Either
  - set DENORT_BIN to an unzipped denort $DENO_VERSION for x86_64-unknown-linux-gnu, or
  - place denort-x86_64-unknown-linux-gnu.zip in \$DENO_DIR/dl/release/v$DENO_VERSION/, or
  - run where https://dl.deno.land is reachable.
MSG
  exit 1
fi
[[ -x dist/mqtt-proxy ]] || fail "deno task compile succeeded but dist/mqtt-proxy is missing"

# A binary that is really the deno CLI (DENORT_BIN pointing at deno) answers --version differently.
BINARY_VERSION="$(dist/mqtt-proxy --version 2>&1 || true)"
[[ "$BINARY_VERSION" == "mqtt-proxy $VERSION" ]] || {
  rm -f dist/mqtt-proxy
  fail "dist/mqtt-proxy --version printed '$BINARY_VERSION', expected 'mqtt-proxy $VERSION' (is DENORT_BIN really denort?)"
}

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/$NAME/conf" "$DIST_DIR"
install -m 0755 dist/mqtt-proxy "$STAGE/$NAME/mqtt-proxy"
install -m 0644 conf/mqtt.properties conf/mqtt-proxy.service "$STAGE/$NAME/conf/"
install -m 0644 README.md "$STAGE/$NAME/README.md"
mkdir -p "$STAGE/$NAME/docs"
install -m 0644 docs/operations.md "$STAGE/$NAME/docs/operations.md"
ARCHIVE="$DIST_DIR/$NAME.tar.gz"
tar -C "$STAGE" --owner=0 --group=0 --numeric-owner -czf "$ARCHIVE" "$NAME"
(cd "$DIST_DIR" && sha256sum "$NAME.tar.gz" >"$NAME.tar.gz.sha256")
echo "release.sh: built $ARCHIVE"
