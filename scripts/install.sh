#!/usr/bin/env bash
# Installs vq with its man pages and shell completions where man and the shells look:
#   scripts/install.sh [PREFIX]          (default /usr/local; needs write access to it)
#   PREFIX/bin/vq
#   PREFIX/share/man/man1/vq*.1
#   PREFIX/share/bash-completion/completions/vq
#   PREFIX/share/zsh/site-functions/_vq
#   PREFIX/share/fish/vendor_completions.d/vq.fish
# Builds the release binary first unless VQ_BINARY names one.
set -euo pipefail
prefix=${1:-/usr/local}
cd "$(dirname "$0")/.."
bin=${VQ_BINARY:-}
if [ -z "$bin" ]; then
    swift build -c release --product vq >&2
    bin=.build/release/vq
fi
[ -x "$bin" ] || { echo "install.sh: $bin is not an executable vq" >&2; exit 1; }
install -d "$prefix/bin" "$prefix/share/man/man1" "$prefix/share/bash-completion/completions" \
    "$prefix/share/zsh/site-functions" "$prefix/share/fish/vendor_completions.d"
install -m 755 "$bin" "$prefix/bin/vq"
install -m 644 man/*.1 "$prefix/share/man/man1/"
install -m 644 completions/vq.bash "$prefix/share/bash-completion/completions/vq"
install -m 644 completions/_vq "$prefix/share/zsh/site-functions/_vq"
install -m 644 completions/vq.fish "$prefix/share/fish/vendor_completions.d/vq.fish"
echo "installed vq into $prefix: bin/vq, $(ls man/*.1 | wc -l) man pages, bash, zsh and fish completions" >&2
