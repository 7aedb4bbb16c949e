#!/usr/bin/env bash
# The decision packages stay pure: reconciler, scheduler, manifest, preview, canary,
# kube and ipalloc must not depend on the packages of bosun that do I/O, must not
# import the standard library's I/O packages (os, net, net/http, os/exec),
# and must not read a clock or draw random numbers (time.Now, time.Since,
# time.Until, rand.): time and randomness are passed in.
set -euo pipefail
cd "$(dirname "$0")/.."
pure="reconciler scheduler manifest preview kube ipalloc canary signature"
# Files allowed to import os, each with why. manifest/load.go reads a
# revision's directory (LoadDir, ReadFiles): the one edge of manifest that
# touches the disk, until loading takes an fs.FS (go-git trees in place).
# signature/keyring.go reads the trusted-keys directory (LoadDir).
allow_os="manifest/load.go signature/keyring.go"
fail=0
for pkg in $pure; do
  bad=$(go list -deps "./$pkg" | grep -E '^bosun/(store|nodes|gitsource|dns|api|server)$' || true)
  if [ -n "$bad" ]; then
    echo "import boundary: bosun/$pkg must not depend on: $bad" >&2
    fail=1
  fi
  for f in $(go list -f '{{range .GoFiles}}{{$.Dir}}/{{.}} {{end}}' "./$pkg"); do
    rel=${f#"$PWD/"}
    allowed=0
    for a in $allow_os; do [ "$rel" = "$a" ] && allowed=1; done
    # Imports, one per line of the file's import declarations.
    hits=$(grep -nE '^\s*(import\s+)?("(os|net|net/http|os/exec)"|[A-Za-z_.]+\s+"(os|net|net/http|os/exec)")\s*$' "$f" || true)
    if [ $allowed = 1 ]; then hits=$(grep -vE '"os"' <<<"$hits" || true); fi
    if [ -n "$hits" ]; then
      while IFS= read -r h; do
        echo "purity: $rel:${h%%:*}: imports $(echo "${h#*:}" | sed 's/^\s*//')" >&2
      done <<<"$hits"
      fail=1
    fi
    hits=$(grep -nE '\btime\.(Now|Since|Until)\(|\brand\.' "$f" | grep -vE '^[0-9]+:\s*//' || true)
    if [ -n "$hits" ]; then
      while IFS= read -r h; do
        echo "purity: $rel:${h%%:*}: reads a clock or randomness: $(echo "${h#*:}" | sed 's/^\s*//')" >&2
      done <<<"$hits"
      fail=1
    fi
  done
done
exit $fail
