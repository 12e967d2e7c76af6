#!/bin/sh
# Install mpath as a tool under DESTDIR/PREFIX, self-contained:
#   PREFIX/lib/mpath/           the wheel and its Python dependencies (pip --target)
#   PREFIX/bin/mpath            a launcher: PYTHON (isolated, -I) on that folder
#   PREFIX/share/man/man1/      mpath(1), mpath-bench(1), ... (gzipped)
#   PREFIX/share/bash-completion/completions/mpath, PREFIX/share/zsh/vendor-completions/_mpath
# Used by `make install` (DESTDIR empty) and `make deb` (DESTDIR = the package tree).
#
# Usage: install-tree.sh WHEEL MANDIR COMPLETIONDIR DESTDIR PREFIX PIP [PYTHON]
# PIP installs the dependencies (cffi is compiled): it must run the same Python
# version as PYTHON (default /usr/bin/python3), which the launcher runs.
set -eu
wheel=$1 mandir=$2 compdir=$3 destdir=$4 prefix=$5 pip=$6 python=${7:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
root=$destdir$prefix
lib=$root/lib/mpath

pip_python=$("$pip" --version | sed -n 's/.*(python \([0-9]*\.[0-9]*\)).*/\1/p')
run_python=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$pip_python" != "$run_python" ]; then
    echo "install-tree.sh: $pip installs for Python $pip_python, but $python is $run_python" >&2
    exit 2
fi

rm -rf "$lib"
mkdir -p "$lib" "$root/bin" "$root/share/man/man1" \
    "$root/share/bash-completion/completions" "$root/share/zsh/vendor-completions"
# The dependencies' versions are the ones the tests ran with (constraints.txt).
"$pip" install --quiet --no-compile --target "$lib" -c "$here/../constraints.txt" "$wheel" \
    2>&1 | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
test -f "$lib/mpath/__init__.py"
rm -rf "$lib/bin"  # console scripts with the build host's paths; the launcher replaces them

sed -e "s|@LIB@|$prefix/lib/mpath|" -e "s|@PYTHON@|$python|" "$here/mpath.in" > "$root/bin/mpath"
chmod 755 "$root/bin/mpath"

for page in "$mandir"/*.1; do
    gzip -9n < "$page" > "$root/share/man/man1/$(basename "$page").gz"
done
install -m 644 "$compdir/mpath.bash" "$root/share/bash-completion/completions/mpath"
install -m 644 "$compdir/_mpath" "$root/share/zsh/vendor-completions/_mpath"
