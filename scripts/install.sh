#!/usr/bin/env bash
# Install what Linli needs into .venv, plus the Debian packages it uses. Python packages come
# from the locks (exact versions and hashes, written by scripts/lock from requirements.txt and
# tests/requirements.txt), so every machine runs what CI tested.
#   scripts/install.sh            the service (scripts/requirements.lock, the CJK font for
#                                 stickers)
#   scripts/install.sh --tests    also what the tests need (scripts/requirements-tests.lock:
#                                 pytest, ruff, the decoders; Debian's Chromium; datefudge for
#                                 the second test pass on another date; libzbar0 for
#                                 the zbar QR decoder the sticker tests and benchmark use;
#                                 poppler-utils, whose pdftoppm renders sheets in a test;
#                                 libreoffice-calc-nogui, which prints the monthly workbook
#                                 to PDF so a test counts its pages; npm, which installs
#                                 axe-core for the browser tests' accessibility checks from
#                                 tests/browser/package-lock.json)
set -euo pipefail
cd "$(dirname "$0")/.."

debs=()
[[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]] || debs+=(fonts-wqy-microhei)
if [[ "${1:-}" == "--tests" ]]; then
    command -v chromium >/dev/null || debs+=(chromium)
    command -v datefudge >/dev/null || debs+=(datefudge)  # .ci/run: the suite on another date
    ldconfig -p 2>/dev/null | grep -q 'libzbar\.so\.0' || debs+=(libzbar0)
    command -v pdftoppm >/dev/null || debs+=(poppler-utils)
    command -v soffice >/dev/null || debs+=(libreoffice-calc-nogui)
    command -v npm >/dev/null || debs+=(npm)
fi
if ((${#debs[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "Installing Debian packages: ${debs[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}" >/dev/null
    else
        echo "Please install the Debian packages: ${debs[*]} (needs root)" >&2
        [[ "${1:-}" == "--tests" ]] && exit 1
    fi
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
lock=scripts/requirements.lock
[[ "${1:-}" == "--tests" ]] && lock=scripts/requirements-tests.lock
.venv/bin/python -m pip install -q --disable-pip-version-check --require-hashes -r "$lock"
if [[ "${1:-}" == "--tests" ]]; then
    # axe-core, injected into pages by the browser tests (tests/browser/axe.py); exact version
    # and hash from the lock, into tests/browser/node_modules (ignored by git).
    npm ci --prefix tests/browser --no-audit --no-fund --silent
fi
