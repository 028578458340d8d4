#!/usr/bin/env bash
# Refreshes the GraphiQL assets served by the development server (web/static/graphiql/)
# from npm, at the versions pinned below, so that GraphiQL needs no CDN. Run it after
# changing a version and commit the result:  scripts/vendor-graphiql.sh
set -euo pipefail
cd "$(dirname "$0")/.."

REACT=18.2.0        # the last React with UMD builds (GraphiQL 3 loads it as a global)
GRAPHIQL=3.8.3
EXPLORER=3.2.5   # its @graphiql/react range matches graphiql 3.8.3's

dest=web/static/graphiql
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() { # package version
  (cd "$work" && npm pack --silent "$1@$2" >/dev/null)
  local tarball
  tarball=$(ls "$work"/*.tgz)
  mkdir -p "$work/$1"
  tar -xzf "$tarball" -C "$work/$1" --strip-components=1
  rm "$tarball"
}

fetch react "$REACT"
fetch react-dom "$REACT"
fetch graphiql "$GRAPHIQL"
fetch @graphiql/plugin-explorer "$EXPLORER"

mkdir -p "$dest"
cp "$work/react/umd/react.production.min.js" "$dest/react.production.min.js"
cp "$work/react-dom/umd/react-dom.production.min.js" "$dest/react-dom.production.min.js"
cp "$work/graphiql/graphiql.min.js" "$dest/graphiql.min.js"
cp "$work/graphiql/graphiql.min.css" "$dest/graphiql.min.css"
cp "$work/@graphiql/plugin-explorer/dist/index.umd.js" "$dest/plugin-explorer.umd.js"
cp "$work/@graphiql/plugin-explorer/dist/style.css" "$dest/plugin-explorer.css"
for license in react react-dom graphiql @graphiql/plugin-explorer; do
  cp "$work/$license/LICENSE" "$dest/LICENSE.$(basename "$license")" 2>/dev/null || true
done
cat > "$dest/VERSIONS" <<VERSIONS
react $REACT
react-dom $REACT
graphiql $GRAPHIQL
@graphiql/plugin-explorer $EXPLORER
VERSIONS
echo "vendored into $dest:"
ls -l "$dest"
