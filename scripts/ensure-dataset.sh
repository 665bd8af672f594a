#!/usr/bin/env bash
# Installs Debian's dataset-fashion-mnist (the default dataset) when it is missing and apt is
# usable (root, or password-less sudo). Otherwise says how to get it; tests that need it skip.
set -euo pipefail
dir=/usr/share/datasets/fashion-mnist
[ -f "$dir/train-images-idx3-ubyte.gz" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: Fashion-MNIST not found in $dir and apt-get is not available;" \
       "download the four IDX .gz files and pass data_dir=DIR (--set data_dir=DIR)." >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else
  echo "note: Fashion-MNIST missing; run: sudo apt-get install dataset-fashion-mnist" >&2
  exit 0
fi
echo "installing Debian package dataset-fashion-mnist (30 MB) ..." >&2
$sudo apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null
echo "Fashion-MNIST installed in $dir" >&2
