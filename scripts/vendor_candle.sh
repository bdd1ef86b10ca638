#!/usr/bin/env bash
# Rebuilds third_party/candle-core from the crates.io release of candle-core 0.11.1 and
# third_party/candle-core.patch (see third_party/README.md).
#
#   scripts/vendor_candle.sh [--check]   rebuild in a temp dir, compare with third_party/candle-core
#                                        (the default; exits 1 and prints the diff on a mismatch)
#   scripts/vendor_candle.sh --write     replace third_party/candle-core with the rebuilt tree
#
# The .crate comes from the cargo registry cache when it is there, else from static.crates.io
# (or $CANDLE_CRATE, a path to the .crate); either way its sha256 must equal the one below (the
# `cksum` of candle-core 0.11.1 in the crates.io index).
set -euo pipefail

NAME=candle-core
VERSION=0.11.1
SHA256=d11c8be87cfbaef9ebb62fb3f850d1fc8e00cc1d11d393fdbe55a4d5c2cdb325
URL="https://static.crates.io/crates/$NAME/$NAME-$VERSION.crate"

mode=check
case "${1:-}" in
  "" | --check) mode=check ;;
  --write) mode=write ;;
  -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--check | --write]" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "$0")/.." && pwd)"
vendored="$root/third_party/$NAME"
patchfile="$root/third_party/$NAME.patch"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

crate="${CANDLE_CRATE:-}"
if [ -z "$crate" ]; then
  for c in "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$NAME-$VERSION.crate"; do
    [ -f "$c" ] && crate="$c" && break
  done
fi
if [ -z "$crate" ]; then
  crate="$tmp/$NAME-$VERSION.crate"
  echo "downloading $URL" >&2
  curl -sSfL -o "$crate" "$URL"
fi
echo "$SHA256  $crate" | sha256sum -c --quiet - >&2 || {
  echo "error: $crate does not have the sha256 of $NAME $VERSION" >&2
  exit 1
}

tar -xzf "$crate" -C "$tmp"
tree="$tmp/$NAME-$VERSION"
# Not vendored: tests, benches and examples (the patch drops their Cargo.toml sections), and the
# packaging metadata (.cargo_vcs_info.json: upstream commit 59f8e903ca80; Cargo.toml.orig: the
# workspace manifest before cargo's normalization; Cargo.lock: unused for a dependency).
rm -rf "$tree/tests" "$tree/benches" "$tree/examples" \
  "$tree/.cargo_vcs_info.json" "$tree/Cargo.toml.orig" "$tree/Cargo.lock"
patch -d "$tree" -p1 --quiet --forward --no-backup-if-mismatch <"$patchfile"

if [ "$mode" = write ]; then
  rm -rf "$vendored"
  cp -R "$tree" "$vendored"
  echo "wrote $vendored" >&2
elif diff -ru "$tree" "$vendored"; then
  echo "ok: third_party/$NAME = $NAME $VERSION (sha256 verified) + third_party/$NAME.patch" >&2
else
  echo "error: third_party/$NAME differs from $NAME $VERSION + the patch (diff above)" >&2
  exit 1
fi
