#!/usr/bin/env bash
# Run `ansible-test sanity` on a copy of this collection, without ci-files.testing.ansible.com.
#
# Usage: tests/sanity/run.sh [ansible-test sanity arguments]
#   default arguments: --venv --python 3.11 (PYTHON_VERSION overrides the version)
#   e.g.  tests/sanity/run.sh --test validate-modules
#         tests/sanity/run.sh --venv --python 3.11 --skip-test pylint
# Environment:
#   VENV            the virtual environment with ansible-core (default: .venv of this repository)
#   SANITY_WORKDIR  where the copy goes (default: a new temporary directory, kept for its tests/output)
#
# ansible-test only runs from <dir>/ansible_collections/<namespace>/<name>, so the repository
# (less .venv, .git, caches and old output) is copied to
# $SANITY_WORKDIR/ansible_collections/oci_registry/trash and ansible-test runs there.
# Sanity virtual environments are cached by ansible-test in ~/.ansible/test/venv; their
# requirements come from the package index pip is configured to use.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
VENV=$(realpath -m "${VENV:-$repo/.venv}")

if [[ ! -x $VENV/bin/ansible-test ]]; then
    echo "run.sh: $VENV/bin/ansible-test not found; run scripts/setup first" >&2
    exit 1
fi

"$here/prepare-ansible-test.sh" "$VENV/bin/python"

namespace=$(sed -n 's/^namespace:[[:space:]]*//p' "$repo/galaxy.yml" | tr -d "\"'[:space:]")
name=$(sed -n 's/^name:[[:space:]]*//p' "$repo/galaxy.yml" | tr -d "\"'[:space:]")

workdir=${SANITY_WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/sanity.XXXXXX")}
dest=$workdir/ansible_collections/$namespace/$name
rm -rf "$dest"
mkdir -p "$dest"
tar -C "$repo" \
    --exclude=./.venv --exclude=./.git --exclude=./tests/output \
    --exclude=__pycache__ --exclude='*.pyc' --exclude=.pytest_cache \
    -cf - . | tar -C "$dest" -xf -

if [[ $# -eq 0 ]]; then
    set -- --venv --python "${PYTHON_VERSION:-3.11}"
fi

echo "run.sh: ansible-test sanity $* in $dest"
cd "$dest"
status=0
PATH=$VENV/bin:$PATH ansible-test sanity --color no "$@" || status=$?
echo "run.sh: results in $dest/tests/output"
exit "$status"
