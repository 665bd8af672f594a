#!/usr/bin/env bash
# ensure-apt.sh PACKAGE PATH WHY: install Debian PACKAGE when PATH is missing and apt is usable
# (root, or password-less sudo); otherwise say how to get it. Never fails the build: what
# needs the package (the default dataset, the browser test) says so or skips.
set -euo pipefail
package=$1 path=$2 why=$3
[ -e "$path" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: $package ($why) is missing and apt-get is not available; install it yourself." >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else
  echo "note: $package ($why) is missing; run: sudo apt-get install $package" >&2
  exit 0
fi
echo "installing Debian package $package ($why) ..." >&2
$sudo apt-get update -qq >/dev/null
if DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$package" >/dev/null; then
  echo "$package installed" >&2
else
  echo "note: apt-get install $package failed; $why will be unavailable" >&2
fi
