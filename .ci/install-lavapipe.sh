#!/usr/bin/env bash
# Test-only system dependency: Mesa 25's lavapipe (a CPU Vulkan driver) from Debian bookworm-backports,
# so that onnxruntime-node's WebGPU execution provider finds an adapter on a machine without a GPU.
# bookworm's own Mesa 22 is refused by the provider. Needs root; non-interactive.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if [ ! -f /etc/apt/sources.list.d/bookworm-backports.sources ]; then
  cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq
apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
dpkg-query -W -f='${Package} ${Version}\n' mesa-vulkan-drivers libvulkan1
