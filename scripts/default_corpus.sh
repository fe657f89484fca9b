#!/usr/bin/env bash
# Builds teddy's default training corpus from Debian packages (no internet beyond the
# Debian archive), laid out for `teddy data prepare --config configs/data/default.toml`:
#
#   data/corpus/prose/          English technical prose: the reStructuredText sources of
#                               the Python 3.11 documentation (python3.11-doc)
#   data/corpus/code/python/    Python's standard library (libpython3.11-stdlib, -minimal), tests left out
#   data/corpus/code/c/         C: the GNU C library headers (libc6-dev)
#   data/corpus/multilingual/   fortune cookies in German, Spanish, Italian, Russian, Polish,
#                               Czech and Brazilian Portuguese, one file per language,
#                               entries separated by a line "%" (each entry is a document)
#   data/corpus/SOURCES.txt     packages, versions, file counts and bytes actually used
#
# Each part is capped (bytes) so the corpus prepares in seconds on two cores; files are
# taken in sorted order until the cap, so the corpus is the same on every machine with
# the same package versions. Idempotent: installs only missing packages and rebuilds
# the corpus only when the stamp (packages, versions, caps) changed.
#
# Environment: CORPUS_DIR (default data/corpus), PROSE_MAX_BYTES, PYTHON_MAX_BYTES,
# C_MAX_BYTES, LANG_MAX_BYTES (per language), FORCE=1 to rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."

CORPUS_DIR=${CORPUS_DIR:-data/corpus}
PROSE_MAX_BYTES=${PROSE_MAX_BYTES:-12000000}
PYTHON_MAX_BYTES=${PYTHON_MAX_BYTES:-8000000}
C_MAX_BYTES=${C_MAX_BYTES:-2000000}
LANG_MAX_BYTES=${LANG_MAX_BYTES:-1200000}

PROSE_PKG=python3.11-doc
PY_PKGS=(libpython3.11-minimal libpython3.11-stdlib)
C_PKG=libc6-dev
# language code -> package (the fortunes-* packages of Debian 12)
LANGS=(de es it ru pl cs pt)
declare -A LANG_PKG=([de]=fortunes-de [es]=fortunes-es [it]=fortunes-it [ru]=fortunes-ru
                     [pl]=fortunes-pl [cs]=fortunes-cs [pt]=fortunes-br)
PKGS=("$PROSE_PKG" "${PY_PKGS[@]}" "$C_PKG")
for l in "${LANGS[@]}"; do PKGS+=("${LANG_PKG[$l]}"); done

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "default corpus: installing ${missing[*]}"
  $SUDO apt-get update -q || true
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    echo "default corpus: could not install ${missing[*]} from the Debian archive" >&2
    exit 1
  fi
fi

versions=$(for p in "${PKGS[@]}"; do dpkg-query -W -f='${Package} ${Version}\n' "$p"; done)
stamp=$(printf '%s\n' "$versions" "caps $PROSE_MAX_BYTES $PYTHON_MAX_BYTES $C_MAX_BYTES $LANG_MAX_BYTES" "layout 1")
if [ "${FORCE:-0}" != 1 ] && [ -f "$CORPUS_DIR/.stamp" ] && [ "$(cat "$CORPUS_DIR/.stamp")" = "$stamp" ]; then
  echo "default corpus: $CORPUS_DIR is up to date"
  exit 0
fi

# Build next to the target and swap in at the end, so an interrupted run never leaves
# a half-written corpus behind.
tmp="$CORPUS_DIR.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"/{prose,code/python,code/c,multilingual}
trap 'rm -rf "$tmp"' EXIT

# copy_capped ROOT DEST MAX < list-of-absolute-paths: copies files (sorted) under DEST,
# keeping their path relative to ROOT, until MAX bytes; prints "files bytes".
copy_capped() {
  local root=$1 dest=$2 max=$3 total=0 n=0 f size rel
  while IFS= read -r f; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    size=$(stat -c %s "$f")
    ((total + size <= max)) || continue
    rel=${f#"$root"/}
    mkdir -p "$dest/$(dirname "$rel")"
    cp "$f" "$dest/$rel"
    total=$((total + size)); n=$((n + 1))
  done
  echo "$n $total"
}

{
  echo "teddy default corpus, built by scripts/default_corpus.sh on $(date -u +%Y-%m-%d)"
  echo
  echo "packages:"
  printf '%s\n' "$versions" | sed 's/^/  /'
  echo
  echo "part                  files      bytes  from"

  doc_root=/usr/share/doc/python3.11/html/_sources
  read -r n b < <(dpkg -L "$PROSE_PKG" | grep -E '^/usr/share/doc/python3.11/html/_sources/.*\.rst\.txt$' | LC_ALL=C sort |
                  copy_capped "$doc_root" "$tmp/prose" "$PROSE_MAX_BYTES")
  printf '%-18s %8s %10s  %s\n' prose "$n" "$b" "$PROSE_PKG ($doc_root)"

  read -r n b < <(dpkg -L "${PY_PKGS[@]}" | grep -E '^/usr/lib/python3\.11/.*\.py$' |
                  grep -v -E '/(test|tests|idle_test)/' | LC_ALL=C sort -u |
                  copy_capped /usr/lib/python3.11 "$tmp/code/python" "$PYTHON_MAX_BYTES")
  printf '%-18s %8s %10s  %s\n' code/python "$n" "$b" "${PY_PKGS[*]} (/usr/lib/python3.11, tests excluded)"

  read -r n b < <(dpkg -L "$C_PKG" | grep -E '^/usr/include/.*\.h$' | LC_ALL=C sort |
                  copy_capped /usr/include "$tmp/code/c" "$C_MAX_BYTES")
  printf '%-18s %8s %10s  %s\n' code/c "$n" "$b" "$C_PKG (/usr/include)"

  for l in "${LANGS[@]}"; do
    out="$tmp/multilingual/$l.txt"
    : >"$out"
    total=0; n=0
    # Regular fortune files only: not the .dat indexes, not the .u8 / compatibility symlinks.
    while IFS= read -r f; do
      [ -f "$f" ] && [ ! -L "$f" ] || continue
      case "$f" in *.dat|*.u8) continue ;; esac
      iconv -f UTF-8 -t UTF-8 "$f" >/dev/null 2>&1 || continue  # keep the corpus valid UTF-8
      size=$(stat -c %s "$f")
      ((total + size <= LANG_MAX_BYTES)) || continue
      cat "$f" >>"$out"
      # Make sure the next file starts a new entry.
      [ -z "$(tail -c1 "$f")" ] || echo >>"$out"
      echo "%" >>"$out"
      total=$((total + size)); n=$((n + 1))
    done < <(dpkg -L "${LANG_PKG[$l]}" | grep '^/usr/share/games/fortunes/' | LC_ALL=C sort)
    printf '%-18s %8s %10s  %s\n' "multilingual/$l" "$n" "$total" "${LANG_PKG[$l]} (/usr/share/games/fortunes)"
  done
} >"$tmp/SOURCES.txt"
printf '%s\n' "$stamp" >"$tmp/.stamp"

rm -rf "$CORPUS_DIR.old.$$"
[ -e "$CORPUS_DIR" ] && mv "$CORPUS_DIR" "$CORPUS_DIR.old.$$"
mkdir -p "$(dirname "$CORPUS_DIR")"
mv "$tmp" "$CORPUS_DIR"
rm -rf "$CORPUS_DIR.old.$$"
trap - EXIT
cat "$CORPUS_DIR/SOURCES.txt"
echo "default corpus: $(du -sh "$CORPUS_DIR" | cut -f1) in $CORPUS_DIR; next: teddy data prepare --config configs/data/default.toml"
