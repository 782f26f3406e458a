#!/usr/bin/env bash
# Builds the site without cargo-leptos (no 16-minute tool install; see docs/ARCHITECTURE.md):
#   wasm bundle (size-optimised) -> wasm-bindgen -> wasm-opt, CSS, xterm.js, public assets -> target/site
#   server binary (dev profile: fast to build; the server is I/O bound).
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
cp style/main.css "$PKG/$NAME.css"
cp -r public/. "$SITE/"
cp node_modules/@xterm/xterm/lib/xterm.js node_modules/@xterm/xterm/css/xterm.css \
   node_modules/@xterm/addon-fit/lib/addon-fit.js "$SITE/vendor/"
echo "    server (cargo build -p server)"
cargo build -q -p server --bin trythis
printf '    site: %s (wasm %s KB)\n' "$SITE" "$(( $(stat -c %s "$PKG/$NAME.wasm") / 1024 ))"
