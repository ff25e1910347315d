#!/bin/sh
# Regenerates data/kjv-psalms/psalms.txt: the Book of Psalms, King James Version, from Debian's bible-kjv packages
# (see data/kjv-psalms/README.md). Needs apt-get and dpkg-deb (Debian/Ubuntu); downloads two packages into a
# temporary folder and installs nothing.
#   sh tools/data/make_psalms.sh [OUT]        (default OUT: data/kjv-psalms/psalms.txt)
set -eu
out=$(realpath "${1:-data/kjv-psalms/psalms.txt}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download bible-kjv bible-kjv-text >/dev/null
for deb in bible-kjv_*.deb bible-kjv-text_*.deb; do dpkg-deb -x "$deb" root; done
# One verse per line (no line wrapping), then: "Psalms N" -> "Psalm N", verse numbers dropped, the leading blank line
# dropped. A psalm is its heading, a blank line, its verses, a blank line.
root/usr/bin/bible -p root/usr/lib -l100000 "Psalms1:1-150:6" \
  | sed -e 's/^Psalms \([0-9][0-9]*\)$/Psalm \1/' -e 's/^ *[0-9][0-9]* //' \
  | sed -e '1{/^$/d}' > "$out"
ls "$work"/*.deb | xargs -n1 basename
wc "$out"
