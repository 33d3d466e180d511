#!/usr/bin/env bash
# Runs every konsens test on a fresh machine, installing what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Node.js and npm drive the official automerge-repo client in the interop tests.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "test.sh: installing Node.js and npm from Debian" >&2
  need_root apt-get update -q
  need_root apt-get install -y -q nodejs npm
fi
# The JS interop harness, exactly as pinned in its lockfile.
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
# The web app's sources (a test rebuilds the committed bundle from them) and
# the browser tests' driver.
npm ci --prefix server/web --no-audit --no-fund --loglevel=error
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
# The browser tests drive Debian's Chromium (playwright-core downloads no browser).
if [ ! -x /usr/bin/chromium ]; then
  echo "test.sh: installing chromium from Debian" >&2
  need_root apt-get update -q
  need_root apt-get install -y -q chromium
fi
# The report tests read PDFs back with Debian's poppler-utils (pdftotext, pdftoppm).
if ! command -v pdftotext >/dev/null 2>&1; then
  echo "test.sh: installing poppler-utils from Debian" >&2
  need_root apt-get update -q
  need_root apt-get install -y -q poppler-utils
fi
# The store's tests and tests/tests/postgres.rs start throwaway PostgreSQL
# clusters with Debian's binaries (/usr/lib/postgresql/*/bin); they fail
# without them.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "test.sh: installing postgresql from Debian" >&2
  need_root apt-get update -q
  need_root apt-get install -y -q postgresql
fi

# The end-to-end tests spawn the real server binary.
cargo build --workspace --bins --locked
cargo test --workspace --locked
# The web app in headless Chromium against the real server binary.
node --test --test-concurrency=1 tests/browser/
