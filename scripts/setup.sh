#!/usr/bin/env bash
# Installs teddy's build and test dependencies from Debian 12's archive (idempotent).
set -euo pipefail
PKGS=(build-essential cmake ninja-build pkg-config git ca-certificates
      libopenblas-openmp-dev libdnnl-dev ocl-icd-opencl-dev libcli11-dev nlohmann-json3-dev libtomlplusplus-dev
      libxxhash-dev libpcre2-dev zlib1g-dev libgtest-dev libgmock-dev libbenchmark-dev
      openmpi-bin libopenmpi-dev python3 python3-torch python3-numpy
      python3-protobuf python3-crcmod python3-jinja2)
# ocl-icd-opencl-dev: libdnnl-dev only recommends it, but Debian's dnnl-config.cmake
# (built with the OpenCL GPU runtime) runs find_package(OpenCL REQUIRED).
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm (for the tiktoken peer test) may come from elsewhere: only the commands matter.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "teddy setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
