#!/usr/bin/env bash
# Builds the site without cargo-leptos (no 16-minute tool install; see docs/ARCHITECTURE.md):
#   wasm bundle (size-optimised) -> wasm-bindgen -> wasm-opt, CSS, xterm.js, public assets -> target/site
#   server binary: TRYTHIS_PROFILE=release (what scripts/run.sh serves) or dev (the tests' build).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
SITE=${TRYTHIS_SITE_ROOT:-target/site}; PKG=$SITE/pkg; NAME=trythis
# LEPTOS_OUTPUT_NAME and LEPTOS_SITE_PKG_DIR come from .cargo/config.toml (compile-time for leptos).

WASM=target/front/wasm32-unknown-unknown/wasm-release/app.wasm
echo "    wasm bundle (cargo build -p app --features hydrate --profile wasm-release)"
cargo build -q -p app --lib --no-default-features --features hydrate --target wasm32-unknown-unknown \
  --profile wasm-release --target-dir target/front
mkdir -p "$PKG" "$SITE/vendor"
STAMP="$PKG/.built-from"
if [ ! -f "$STAMP" ] || [ "$WASM" -nt "$STAMP" ]; then
  echo "    wasm-bindgen + wasm-opt"
  wasm-bindgen --target web --no-typescript --out-name "$NAME" --out-dir "$PKG" "$WASM"
  mv "$PKG/${NAME}_bg.wasm" "$PKG/$NAME.wasm"   # <HydrationScripts> loads /pkg/<name>.wasm
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals "$PKG/$NAME.wasm" -o "$PKG/$NAME.wasm"
  touch "$STAMP"
fi
cp -p style/main.css "$PKG/$NAME.css"
cp -rp public/. "$SITE/"
cp -p node_modules/@xterm/xterm/lib/xterm.js node_modules/@xterm/xterm/css/xterm.css \
   node_modules/@xterm/addon-fit/lib/addon-fit.js "$SITE/vendor/"
# Precompressed variants the server sends as they are (brotli where the tool is present).
for f in "$PKG/$NAME.js" "$PKG/$NAME.wasm" "$PKG/$NAME.css" "$SITE"/vendor/*.js "$SITE"/vendor/*.css "$SITE/terminal.js"; do
  [ -f "$f.gz" ] && ! [ "$f" -nt "$f.gz" ] || gzip -9 -k -f -n "$f"
  if command -v brotli >/dev/null; then [ -f "$f.br" ] && ! [ "$f" -nt "$f.br" ] || brotli -q 11 -f -k "$f"; fi
done
PROFILE=${TRYTHIS_PROFILE:-dev}
echo "    server (cargo build -p server --profile $PROFILE)"
cargo build -q -p server --bin trythis --profile "$PROFILE"
printf '    site: %s (wasm %s KB)\n' "$SITE" "$(( $(stat -c %s "$PKG/$NAME.wasm") / 1024 ))"
