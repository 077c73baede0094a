#!/usr/bin/env bash
# Debian's chromium for the reviewers' page test (tests/reviews/test_review_page.py), driven by
# Playwright through executable_path: no browser is downloaded. Idempotent; `make test` runs it.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser test..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "chromium is not installed and cannot be installed here (needs root and apt-get):" >&2
echo "  sudo apt-get install chromium   # the reviewers' page test will fail without it" >&2
