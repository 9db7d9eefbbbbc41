#!/usr/bin/env bash
# Installs the system packages a build needs when they are missing (cmake for
# Pingora's zlib-ng). Safe to run repeatedly; does nothing when all are present.
set -euo pipefail
missing=()
for pkg in "$@"; do
  case "$pkg" in
    cmake) command -v cmake >/dev/null || missing+=(cmake) ;;
    prometheus) command -v prometheus >/dev/null || missing+=(prometheus) ;;
    nginx) command -v nginx >/dev/null || missing+=(nginx) ;;
    wrk) command -v wrk >/dev/null || missing+=(wrk) ;;
    *) dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg") ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
