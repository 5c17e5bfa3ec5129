#!/usr/bin/env bash
# Installs what streamer needs on a Debian machine, skipping what is already there.
#   scripts/install-deps.sh run    the monitor only (a Python venv; PyAV wheels carry FFmpeg)
#   scripts/install-deps.sh test   also the real servers the test suite starts
set -euo pipefail
mode=${1:-run}
cd "$(dirname "$0")/.."

# libsrt: SRT ingest, through ctypes (the PyAV wheels have no SRT).
apt_packages=(libsrt1.5-openssl)
if [ "$mode" = test ] || [ "$mode" = bench ]; then
  # nginx + RTMP module: the independent real origin; stream module: RTMPS in front of it;
  # ffmpeg: transcode ladder inside nginx-rtmp, and an SRT listener writing HLS;
  # prometheus: real scrapes + promtool; docker-compose: validates the compose file;
  # chromium: status page tests; janus, janus-tools: an independent WebRTC server (WHIP/WHEP
  # tests) and janus-pp-rec; iproute2: the network namespace those tests run Janus in.
  apt_packages+=(nginx libnginx-mod-rtmp libnginx-mod-stream ffmpeg prometheus docker-compose chromium janus janus-tools iproute2)
fi
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# nodejs, npm: hls.js (pinned, installed by the tests into a cache directory) plays LL-HLS
# in chromium. Looked up as commands: a Node.js from elsewhere (whose package bundles npm
# and conflicts with Debian's) serves as well.
if [ "$mode" = test ] || [ "$mode" = bench ]; then
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
extras=""
[ "$mode" = run ] || extras="[dev]"
stamp=".venv/.installed-${mode}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e ".${extras}"
  touch "$stamp"
fi
