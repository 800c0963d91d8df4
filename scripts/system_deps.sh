#!/usr/bin/env bash
# Installs the Debian libraries headless bpy needs (and any extra packages named as arguments),
# only when something is missing. Needs root or sudo; otherwise says what to install.
set -euo pipefail
libs=(libx11-6 libxrender1 libxfixes3 libxi6 libxkbcommon0 libsm6 libice6 libxext6 libgl1)
want=("${libs[@]}" "$@")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "warning: not a Debian/Ubuntu system; make sure these libraries are installed: ${missing[*]}" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "error: missing Debian packages ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
