#!/usr/bin/env bash
# Installs prov into $PROV_INSTALL_DIR (default ~/.local/bin) for a CI job, without a cold build
# per job:
#   install-prov.sh VERSION
#     the release binary: $PROV_RELEASE_URL/prov-VERSION-x86_64-linux.tar.gz, checked against
#     the .sha256 beside it (publish both once per release, e.g. as release assets of your
#     fork: `cargo build --release --locked && tar -C target/release -czf prov-V-x86_64-linux.tar.gz prov
#     && sha256sum prov-V-x86_64-linux.tar.gz > prov-V-x86_64-linux.tar.gz.sha256`).
#   install-prov.sh --source DIR
#     a build of the prov checkout DIR; keep $CARGO_HOME and $CARGO_TARGET_DIR in the CI cache
#     (actions/cache) so only the first job of a version compiles.
# A prov of that version already there (a cache hit) is kept. On GitHub Actions the directory is
# added to $GITHUB_PATH for the following steps.
set -euo pipefail
dest=${PROV_INSTALL_DIR:-$HOME/.local/bin}
mkdir -p "$dest"
if [[ -n ${GITHUB_PATH:-} ]]; then echo "$dest" >> "$GITHUB_PATH"; fi
case ${1:-} in
  --source)
    src=${2:?usage: install-prov.sh --source DIR}
    root=$(mktemp -d)
    cargo install --locked --path "$src" --root "$root" --force
    install -m 0755 "$root/bin/prov" "$dest/prov"
    rm -rf "$root"
    ;;
  ""|-*)
    echo "usage: install-prov.sh VERSION | --source DIR" >&2; exit 1 ;;
  *)
    version=$1
    if [[ -x $dest/prov ]] && [[ $("$dest/prov" --version 2>/dev/null) == "prov $version" ]]; then
      echo "prov $version already installed (cache hit)"; exit 0
    fi
    base=${PROV_RELEASE_URL:?set PROV_RELEASE_URL to where your prov releases are published}
    file="prov-$version-x86_64-linux.tar.gz"
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    curl -fsSL --retry 3 -o "$tmp/$file" "$base/$file"
    curl -fsSL --retry 3 -o "$tmp/$file.sha256" "$base/$file.sha256"
    want=$(cut -d' ' -f1 < "$tmp/$file.sha256")
    got=$(sha256sum "$tmp/$file" | cut -d' ' -f1)
    if [[ $want != "$got" ]]; then
      echo "install-prov.sh: $file does not match its sha256 ($got, expected $want)" >&2; exit 1
    fi
    tar -xzf "$tmp/$file" -C "$tmp" prov
    install -m 0755 "$tmp/prov" "$dest/prov"
    ;;
esac
"$dest/prov" --version
