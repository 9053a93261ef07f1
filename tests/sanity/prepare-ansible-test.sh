#!/usr/bin/env bash
# Let `ansible-test sanity --venv` bootstrap pip without reaching ci-files.testing.ansible.com.
#
# Usage: tests/sanity/prepare-ansible-test.sh [PYTHON]
#   PYTHON: the interpreter that has ansible-core (ansible_test) and pip installed;
#           default: $VENV/bin/python, else .venv/bin/python of this repository, else python3.
#
# Why: ansible-test creates each sanity virtual environment with `python -m venv --without-pip`
# and then bootstraps pip in it with a get-pip script
# (ansible_test/_util/target/setup/requirements.py, bootstrap()):
#   url        = https://ci-files.testing.ansible.com/ansible-test/get-pip-<V>.py
#   cache_path = ~/.ansible/test/cache/get_pip_<V with "." replaced by "_">.py
# where <V> is get_venv_packages(python)['pip'] in ansible_test/_internal/python_requirements.py
# (24.2 for ansible-core 2.19). When cache_path exists it is used as is and nothing is downloaded
# (see ansible/ansible#77304). ansible-test's quiet_pip.py then runs it, with GET_PIP=<cache_path>, as
#   runpy.run_module('get_pip_<V>', run_name='__main__', alter_sys=True)
# under the new venv's interpreter with the arguments
#   --disable-pip-version-check pip==<V> --no-setuptools --no-wheel
# exactly like the real get-pip.py, which installs pip from a zip of pip embedded in it.
#
# This script writes that file: a get-pip stand-in that embeds (base64 zip) the pip package of
# the local PYTHON, unpacks it to a temporary directory, and runs
#   pip install --upgrade --force-reinstall <the arguments above, less --no-setuptools/--no-wheel>
# which installs pip==<V> into the venv. The script also saves pip-<V>-py3-none-any.whl beside it
# (pip download, once); the stand-in installs that wheel with --no-index, so the bootstrap needs no
# network at all; without the wheel it installs pip==<V> from the package index pip is configured to use.
# It is idempotent: the file is rewritten (atomically) only when its content would change, and a
# file it did not write (e.g. the real get-pip, downloaded where that host is reachable) is kept.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

python=${1:-}
if [[ -z $python ]]; then
    if [[ -n ${VENV:-} && -x $VENV/bin/python ]]; then
        python=$VENV/bin/python
    elif [[ -x $repo/.venv/bin/python ]]; then
        python=$repo/.venv/bin/python
    else
        python=python3
    fi
fi

"$python" - <<'PY'
import base64
import io
import os
import sys
import tempfile
import types
import zipfile

try:
    import pip
except ImportError:
    sys.exit('prepare-ansible-test: %s has no pip; install pip into it first' % sys.executable)

try:
    from ansible_test._internal.python_requirements import get_venv_packages
except ImportError:
    sys.exit('prepare-ansible-test: %s has no ansible-core (ansible_test); run scripts/setup first' % sys.executable)

try:
    from ansible_test._internal.constants import SUPPORTED_PYTHON_VERSIONS
except ImportError:
    SUPPORTED_PYTHON_VERSIONS = ()

# get_venv_packages() only reads python.version; ask for the pip of every Python version ansible-test
# supports (one pip version for all of them in ansible-core 2.19, but it has a per-version override table).
versions = sorted({
    get_venv_packages(types.SimpleNamespace(version=python_version))['pip']
    for python_version in set(SUPPORTED_PYTHON_VERSIONS) | {'%d.%d' % sys.version_info[:2]}
})

pip_dir = os.path.dirname(os.path.abspath(pip.__file__))

# A deterministic zip (fixed timestamps, sorted entries, no bytecode) so that an unchanged pip
# gives byte-identical output and the file is not rewritten.
buf = io.BytesIO()
with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED) as zf:
    entries = []
    for root, dirs, files in os.walk(pip_dir):
        dirs[:] = sorted(d for d in dirs if d != '__pycache__')
        for name in sorted(files):
            if name.endswith(('.pyc', '.pyo')):
                continue
            path = os.path.join(root, name)
            entries.append((os.path.relpath(path, os.path.dirname(pip_dir)), path))
    for arcname, path in sorted(entries):
        info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        with open(path, 'rb') as f:
            zf.writestr(info, f.read())
payload = base64.b64encode(buf.getvalue()).decode('ascii')
payload = '\n'.join(payload[i:i + 76] for i in range(0, len(payload), 76))

template = '''#!/usr/bin/env python
# Stand-in for ansible-test's get-pip-%(version)s.py, written by tests/sanity/prepare-ansible-test.sh
# of the oci_registry.trash collection. It embeds pip %(local)s taken from the local interpreter
# and uses it to run: pip install --upgrade --force-reinstall <arguments> (e.g. pip==%(version)s).
import base64
import io
import os
import shutil
import sys
import tempfile
import zipfile

PIP_ZIP = """
%(payload)s
"""


def main():
    args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
    # A wheel saved beside this file (by prepare-ansible-test.sh) makes the install need no index.
    here = os.path.dirname(os.path.abspath(__file__))
    wheels = {}
    for arg in args:
        if arg.startswith('pip=='):
            wheel = os.path.join(here, 'pip-%%s-py3-none-any.whl' %% arg[len('pip=='):])
            if os.path.isfile(wheel):
                wheels[arg] = wheel
    if wheels and all(arg.startswith('-') or arg in wheels for arg in args):
        args = ['--no-index'] + [wheels.get(arg, arg) for arg in args]
    tmpdir = tempfile.mkdtemp(prefix='get-pip-')
    try:
        with zipfile.ZipFile(io.BytesIO(base64.b64decode(PIP_ZIP))) as zf:
            zf.extractall(tmpdir)
        sys.path.insert(0, tmpdir)
        from pip._internal.cli.main import main as pip_main
        return pip_main(['install', '--upgrade', '--force-reinstall'] + args)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
'''

MARKER = 'written by tests/sanity/prepare-ansible-test.sh'
cache_dir = os.path.expanduser('~/.ansible/test/cache')
os.makedirs(cache_dir, exist_ok=True)

for version in versions:
    content = template % dict(version=version, local=pip.__version__, payload=payload)
    path = os.path.join(cache_dir, 'get_pip_%s.py' % version.replace('.', '_'))
    try:
        with open(path, encoding='utf-8') as f:
            current = f.read()
    except FileNotFoundError:
        current = None
    if current == content:
        print('prepare-ansible-test: up to date: %s' % path)
        continue
    if current is not None and MARKER not in current:
        print('prepare-ansible-test: kept %s (not written by this script, e.g. the real get-pip)' % path)
        continue
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix='.get_pip-', suffix='.tmp')
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    print('prepare-ansible-test: wrote %s (pip %s from %s, installs pip==%s)' % (path, pip.__version__, pip_dir, version))

# Save the wheel of each pip version beside it, so that the bootstrap needs no package index later.
for version in versions:
    wheel = os.path.join(cache_dir, 'pip-%s-py3-none-any.whl' % version)
    if os.path.isfile(wheel):
        print('prepare-ansible-test: up to date: %s' % wheel)
        continue
    import subprocess
    cmd = [sys.executable, '-m', 'pip', 'download', '--quiet', '--disable-pip-version-check', '--no-deps',
           '--only-binary', ':all:', '--dest', cache_dir, 'pip==%s' % version]
    if subprocess.call(cmd) == 0 and os.path.isfile(wheel):
        print('prepare-ansible-test: saved %s' % wheel)
    else:
        print('prepare-ansible-test: could not download pip %s; the bootstrap will fetch it from the package index' % version)
PY
