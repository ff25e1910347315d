#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh Debian or Ubuntu machine that has only the
# .NET SDK, restores the pinned .NET Interactive kernel, then runs every test (`dotnet test -c Release`).
# Extra arguments go to `dotnet test` (e.g. --filter). .ci/run calls this script.
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the tests use:
#   gcc                    the libstdc++-fix tests compile stand-in libstdc++ files with version scripts
#   python3-nbformat       executed notebooks are validated against Jupyter's nbformat schema
#   python3-jupyter-client, python3-nbclient   notebooks also run the JupyterLab way: Jupyter's own client on the
#                                               real kernel's kernelspec
#   python3-torch, libopenblas0-openmp          the bench's smoke test runs the same workloads in PyTorch; tests/golden/make_golden.py checks the golden fixtures
#                                               (OpenBLAS-openmp is PyTorch's fastest BLAS here; see tools/Workbook.Bench)
#   chromium               the offline HTML site is checked in a headless browser
packages=(gcc python3-nbformat python3-jupyter-client python3-nbclient python3-torch libopenblas0-openmp chromium)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "The tests need these Debian/Ubuntu packages, and apt-get is not available: ${missing[*]}" >&2
    exit 1
  fi
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "Installing ${missing[*]} needs root (sudo is not available)." >&2; exit 1; }
    sudo=(sudo)
  fi
  echo "Installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Make the OpenMP build of OpenBLAS the system BLAS (the pthread build fights torch's threads on 2 cores).
for lib in libblas.so.3 liblapack.so.3; do
  alt=/usr/lib/x86_64-linux-gnu/openblas-openmp/$lib
  if [ -e "$alt" ] && [ "$(readlink -f "/etc/alternatives/$lib-x86_64-linux-gnu" 2>/dev/null)" != "$alt" ]; then
    if [ "$(id -u)" -eq 0 ]; then update-alternatives --set "$lib-x86_64-linux-gnu" "$alt" >/dev/null 2>&1 || true
    elif command -v sudo >/dev/null; then sudo update-alternatives --set "$lib-x86_64-linux-gnu" "$alt" >/dev/null 2>&1 || true; fi
  fi
done
command -v dotnet >/dev/null || { echo "The .NET SDK (10) is required: https://dot.net" >&2; exit 1; }

# The notebook kernel: Microsoft.dotnet-interactive, pinned in .config/dotnet-tools.json.
dotnet tool restore
exec dotnet test -c Release "$@"
