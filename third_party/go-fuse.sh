#!/usr/bin/env bash
# third_party/go-fuse is github.com/hanwen/go-fuse/v2 at the version below,
# exactly as the Go module proxy serves it (checked against the pinned h1:
# sum, the one in go.sum), plus third_party/go-fuse-patches/*.patch applied
# in name order. go.mod replaces the module with that directory.
#
#   third_party/go-fuse.sh update   re-create third_party/go-fuse
#   third_party/go-fuse.sh check    fail if third_party/go-fuse differs
#                                   from what update would make (CI)
#
# To move to a new go-fuse: change version and sum (go.sum has the sum),
# re-base the patches on it, run update, and bump the require and replace
# lines in go.mod together.
set -euo pipefail

module=github.com/hanwen/go-fuse/v2
version=v2.12.1
sum=h1:b6NXOPCraS9NvN4vtHZXDN1nsNKdoDlyafWxWnuO30Q=

mode=${1:-check}
case $mode in
check | update) ;;
*)
  echo "usage: $0 [check|update]" >&2
  exit 2
  ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT

# go mod download puts the module in the module cache (fetching it from
# GOPROXY if needed) and reports where it is and its hash, which it has
# verified against the checksum database unless GONOSUMDB says otherwise.
# It runs in an empty module so that this repository's replace is not
# in the way.
mkdir "$tmp/mod"
info=$(cd "$tmp/mod" && GOFLAGS=-mod=mod go mod download -json "$module@$version")
dir=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
got=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Sum": "\(.*\)",\{0,1\}$/\1/p')
if [ "$got" != "$sum" ]; then
  echo "$module@$version: sum $got, want $sum" >&2
  exit 1
fi
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
  echo "$module@$version: go mod download gave no directory" >&2
  exit 1
fi

cp -R "$dir" "$tmp/go-fuse"
chmod -R u+w "$tmp/go-fuse"
for p in "$here"/go-fuse-patches/*.patch; do
  [ -e "$p" ] || continue
  patch -s -p1 -d "$tmp/go-fuse" --no-backup-if-mismatch <"$p"
done

case $mode in
check)
  if ! diff -r "$tmp/go-fuse" "$here/go-fuse"; then
    echo "third_party/go-fuse differs from $module@$version + go-fuse-patches; run $0 update" >&2
    exit 1
  fi
  ;;
update)
  rm -rf "$here/go-fuse"
  mv "$tmp/go-fuse" "$here/go-fuse"
  ;;
esac
