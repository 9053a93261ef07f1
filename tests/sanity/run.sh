#!/usr/bin/env bash
# Run `ansible-test sanity` on a copy of this collection, without ci-files.testing.ansible.com.
#
# Usage: tests/sanity/run.sh [ansible-test sanity arguments]
#   default arguments: --venv --python 3.11 (PYTHON_VERSION overrides the version)
#   e.g.  tests/sanity/run.sh --test validate-modules
#         tests/sanity/run.sh --venv --python 3.11 --skip-test pylint
# Environment:
#   VENV            the virtual environment with ansible-core (default: .venv of this repository)
#   SANITY_WORKDIR  where the copy goes (default: a new temporary directory, kept after a failure
#                   for its tests/output)
#
# scripts/ansible-test does the work (the copy into an ansible_collections tree, the get-pip stand-in
# of prepare-ansible-test.sh); scripts/checks runs it as part of scripts/test. No test is ignored:
# there is no tests/sanity/ignore-*.txt, and a finding is fixed where it is.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [[ -n ${SANITY_WORKDIR:-} ]]; then
    export ANSIBLE_TEST_WORKDIR=$SANITY_WORKDIR
fi
exec "$here/../../scripts/ansible-test" sanity "$@"
