#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv.
# Idempotent: when nothing that shapes the environment changed, it returns in a second.
# The mmcv 2.1.0 wheel is compiled once from its sdist (no wheel exists for this torch)
# and cached outside the checkout, in $HARNESS_CACHE/wheels (default ~/.cache/objaware-harness).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
cache="${HARNESS_CACHE:-$HOME/.cache/objaware-harness}"
wheels="$cache/wheels/mmcv-2.1.0-torch2.14.1-cp311"
python="${HARNESS_PYTHON:-python3.11}"
stamp="$venv/.setup-stamp"
want="$(cat "$root/pyproject.toml" "$root/scripts/setup.sh" | sha256sum | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/harness" ]; then
  exit 0
fi
log() { echo "[setup] $*" >&2; }
command -v "$python" >/dev/null || { echo "setup: $python not found (Python 3.11 is required)" >&2; exit 2; }

[ -x "$venv/bin/python" ] || { log "creating $venv"; "$python" -m venv "$venv"; }
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
log "installing torch 2.14.1 / torchvision 0.29.1"
"${pip[@]}" install torch==2.14.1 torchvision==0.29.1 numpy wheel

if ! ls "$wheels"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
  log "building mmcv 2.1.0 from source (once; about 15 minutes on 2 cores)"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  # mmcv 2.1.0's setup.py needs an old setuptools (pkg_resources, legacy build); the
  # version the stack runs with is installed below.
  "${pip[@]}" install "mmengine==0.10.7" ninja "setuptools<70"
  "${pip[@]}" download --no-build-isolation --no-deps --no-binary :all: mmcv==2.1.0 -d "$work"
  tar -xzf "$work"/mmcv-2.1.0.tar.gz -C "$work"
  # torch 2.14 headers need C++20; mmcv 2.1.0 hard-codes older standards.
  sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$work/mmcv-2.1.0/setup.py"
  mkdir -p "$wheels"
  (cd "$work/mmcv-2.1.0" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" \
     "$venv/bin/python" -m pip --disable-pip-version-check -q wheel --no-build-isolation --no-deps . -w "$work/out")
  mv "$work"/out/mmcv-2.1.0-*.whl "$wheels/"
fi
# torch wants setuptools >= 77; mmengine imports pkg_resources, gone from setuptools 81.
"${pip[@]}" install "setuptools>=77.0.3,<81"
log "installing the project and its pinned stack"
"${pip[@]}" install --find-links "$wheels" -e "$root[dev]"
# mmengine/mmcv pull opencv-python; exactly one cv2 provider must remain: the contrib
# build, which has cv2.ximgproc (selective search).
cv="$("$venv/bin/python" -m pip list --format=freeze | grep -i '^opencv-contrib-python-headless==' | cut -d= -f3)"
"${pip[@]}" uninstall -y opencv-python opencv-python-headless opencv-contrib-python >/dev/null 2>&1 || true
"${pip[@]}" install --force-reinstall --no-deps "opencv-contrib-python-headless==$cv"
"$venv/bin/python" -c "import cv2; cv2.ximgproc.segmentation" >/dev/null
# Tools of the leaderboard tests, from Debian's packages: headless Chromium renders the
# HTML page; pdflatex (about 45 MB with booktabs) compiles the LaTeX tables.
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq)
  updated=""
  if ! command -v chromium >/dev/null 2>&1; then
    log "installing Debian's chromium (headless browser for the leaderboard page test)"
    apt-get update -qq >/dev/null && updated=1 && "${apt[@]}" chromium >/dev/null
  fi
  if ! command -v pdflatex >/dev/null 2>&1; then
    log "installing Debian's texlive-latex-base and -recommended (pdflatex and booktabs for the LaTeX test)"
    { [ -n "$updated" ] || apt-get update -qq >/dev/null; } && \
      "${apt[@]}" --no-install-recommends texlive-latex-base texlive-latex-recommended >/dev/null
  fi
fi
echo "$want" > "$stamp"
log "ready: $venv"
