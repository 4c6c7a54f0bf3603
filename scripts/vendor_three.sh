#!/usr/bin/env bash
# Rebuild the three.js bundle that `maed demo`'s page (index.html) draws the 3D bodies with (issue 19):
#   src/maed/viewer/vendor/three.min.js     one classic (non-module) script: the parts of three.js the
#                                            viewer uses, OrbitControls and GLTFLoader, as `window.THREE`
#   src/maed/viewer/vendor/three.LICENSE    three.js's licence (MIT), copied from the package
# from the npm registry at pinned versions: three (the library) and esbuild (the bundler; it only
# tree-shakes, minifies and wraps, it adds no code of its own). A classic script because browsers refuse
# ES modules on pages opened from file:// (Chromium: CORS, origin 'null'), and the page must open from disk.
# Needs node and npm. Usage: scripts/vendor_three.sh   (the same versions give the same bytes)
set -euo pipefail
cd "$(dirname "$0")/.."

THREE_VERSION=0.187.0
ESBUILD_VERSION=0.28.2
VENDOR=src/maed/viewer/vendor

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null &&
    npm install --ignore-scripts --no-audit --no-fund --no-save "three@$THREE_VERSION" "esbuild@$ESBUILD_VERSION" >/dev/null)

# what src/maed/viewer/viewer.js uses; anything else of three.js is left out of the bundle
cat > "$work/entry.js" <<'EOF'
export {
  AnimationMixer, Box3, Color, DirectionalLight, GridHelper, HemisphereLight, LoopOnce, PerspectiveCamera,
  Scene, Vector3, WebGLRenderer,
} from 'three';
export { OrbitControls } from 'three/examples/jsm/controls/OrbitControls.js';
export { GLTFLoader } from 'three/examples/jsm/loaders/GLTFLoader.js';
EOF

banner="/* three.js $THREE_VERSION (https://threejs.org, MIT licence: three.LICENSE), npm package three@$THREE_VERSION: \
the parts maed's viewer uses, with OrbitControls and GLTFLoader, bundled as window.THREE by \
scripts/vendor_three.sh with esbuild@$ESBUILD_VERSION */"
mkdir -p "$VENDOR"
"$work/node_modules/.bin/esbuild" "$work/entry.js" --bundle --minify --format=iife --global-name=THREE \
    --target=es2020 --legal-comments=eof --charset=utf8 --banner:js="$banner" --log-level=warning \
    --outfile="$VENDOR/three.min.js"
cp "$work/node_modules/three/LICENSE" "$VENDOR/three.LICENSE"
wc -c "$VENDOR/three.min.js" "$VENDOR/three.LICENSE"
sha256sum "$VENDOR/three.min.js"
