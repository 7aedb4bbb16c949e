#!/usr/bin/env bash
# The decision packages stay pure: reconciler, scheduler, manifest and preview must not import
# the packages that do I/O.
set -euo pipefail
fail=0
for pkg in reconciler scheduler manifest preview; do
  bad=$(go list -deps "./$pkg" | grep -E '^bosun/(store|nodes|gitsource|dns|api|server)$' || true)
  if [ -n "$bad" ]; then
    echo "import boundary: bosun/$pkg must not depend on: $bad" >&2
    fail=1
  fi
done
exit $fail
