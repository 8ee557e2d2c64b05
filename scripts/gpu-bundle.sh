#!/usr/bin/env bash
# What scripts/bench-gpu.sh needs on a GPU machine that has no network and no Node.js: `pack` (here, after
# `npm ci`) writes BUNDLE (default .devkit/) with the node binary, the runtime node_modules for linux-x64 (other
# platforms' ORT binaries, TypeScript and onnxruntime-web left out), both xz-compressed, and Debian's Vulkan loader
# (libvulkan1) so Dawn can reach the NVIDIA driver; `unpack` (there, in the repository root) restores node_modules where none is,
# puts node in /tmp/topiary-node/ and installs the loader, then prints the line to export TOPIARY_NODE.
# The bundle (~50 MB) travels with the working tree; keep it out of git (.git/info/exclude).
#
#   bash scripts/gpu-bundle.sh pack [BUNDLE]      bash scripts/gpu-bundle.sh unpack [BUNDLE]
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?pack or unpack}
B=${2:-.devkit}
case $mode in
  pack)
    mkdir -p "$B/gl"
    tmp=$(mktemp -d)
    cp -a node_modules "$tmp/"
    rm -rf "$tmp/node_modules/typescript" "$tmp/node_modules/@types" "$tmp/node_modules/onnxruntime-web"
    find "$tmp/node_modules/onnxruntime-node/bin" -mindepth 2 -maxdepth 3 -type d \( -name darwin -o -name win32 -o -name arm64 \) -prune -exec rm -rf {} +
    tar -C "$tmp" -cf - node_modules | xz -T0 -6 > "$B/nm.tar.xz"
    xz -T0 -6 -c "$(command -v node)" > "$B/node.xz"
    rm -rf "$tmp"
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    mkdir -p /tmp/amd64/partial
    # shellcheck disable=SC2086
    apt-get $o update > /dev/null && (cd "$B/gl" && apt-get $o download libvulkan1)
    du -sh "$B"
    ;;
  unpack)
    unxz() { if command -v xz > /dev/null; then xz -dc "$1"; else python3 -c 'import lzma,sys,shutil; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"; fi; }
    mkdir -p /tmp/topiary-node
    unxz "$B/node.xz" > /tmp/topiary-node/node && chmod +x /tmp/topiary-node/node
    [[ -d node_modules ]] || unxz "$B/nm.tar.xz" | tar -xf -
    if ! ldconfig -p | grep -q libvulkan.so.1; then for f in "$B"/gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
    echo "export TOPIARY_NODE=/tmp/topiary-node/node PATH=/tmp/topiary-node:\$PATH"
    ;;
  *) echo "gpu-bundle: $mode: choose pack or unpack" >&2; exit 2 ;;
esac
