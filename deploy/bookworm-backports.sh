#!/bin/sh
# Writes an apt source for bookworm-backports derived from the image's own Debian source entry:
# the deb822 stanza whose Suites line lists plain "bookworm", copied with only that line changed,
# so the mirror, components and signing key stay whatever the base image uses.
# iproute2 >= 6.3 is needed for VXLAN MDB entries with `dst`; bookworm ships 6.1.
# Usage: bookworm-backports.sh [SOURCES] [OUTPUT]
set -eu
src=${1:-/etc/apt/sources.list.d/debian.sources}
dst=${2:-/etc/apt/sources.list.d/bookworm-backports.sources}
[ -f "$src" ] || { echo "bookworm-backports: $src not found (not a Debian bookworm image?)" >&2; exit 1; }
awk -v RS= -v ORS='\n\n' '
  /(^|\n)Suites:([^\n]*[ \t])?bookworm([ \t\n]|$)/ && !done {
    n = split($0, l, "\n"); out = ""
    for (i = 1; i <= n; i++) {
      if (l[i] ~ /^Suites:/) l[i] = "Suites: bookworm-backports"
      out = out l[i] "\n"
    }
    printf "%s", out; done = 1
  }' "$src" > "$dst"
[ -s "$dst" ] || { echo "bookworm-backports: no stanza with Suites: bookworm in $src" >&2; rm -f "$dst"; exit 1; }
