# Sourced by run.sh and test.sh: the one place that installs what rt-mer
# needs. Both use the same .venv (created if missing), with rt-mer installed
# editable, so the two commands never install into different Pythons, and a
# second run skips apt and pip when nothing changed. Each step says so on
# stderr, one line, before it starts.
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive

say() { echo "rt-mer: $*" >&2; }

# install_debian_packages PACKAGE...: apt only for those not installed yet.
install_debian_packages() {
    local missing=() package
    for package in "$@"; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null)" = installed ] || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}..."
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# install_into_venv EXTRA: .venv with rt-mer[EXTRA]; pip runs only when
# pyproject.toml (the dependencies) changed since the last install of that
# extra. Editable, so a change to the code needs no reinstall.
install_into_venv() {
    local extra=$1 stamp=".venv/.rt-mer-$1.installed" key
    if [ ! -x .venv/bin/python ]; then
        say "creating .venv..."
        python3 -m venv .venv
    fi
    key=$(sha256sum pyproject.toml | cut -d' ' -f1)
    [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && return 0
    say "installing rt-mer[$extra] into .venv (the first time takes minutes)..."
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extra]"
    echo "$key" >"$stamp"
}
