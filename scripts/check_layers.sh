#!/usr/bin/env bash
# The layering, enforced: a file under src/<layer>/ includes project headers only from its own layer
# and the layers below it (core <- os <- event <- conf <- http <- upstream <- modules <- main), and a
# module includes no other module's files. Prints each include that climbs up; exits 1 if there is one.
cd "$(dirname "$0")/.."
layers=(core os event conf http upstream modules main)
bad=0
for i in "${!layers[@]}"; do
  layer=${layers[$i]}
  [ -d "src/$layer" ] || continue
  allowed=$(printf '%s|' "${layers[@]:0:$((i + 1))}")
  allowed=${allowed%|}
  while IFS= read -r hit; do
    echo "layering: $hit"
    bad=1
  done < <(grep -rnE '#include "[a-z_]+/' "src/$layer" | grep -vE "#include \"($allowed)/")
done
# Modules stand alone: modules/<a>/ never includes modules/<b>/.
while IFS= read -r hit; do
  file=${hit%%:*}
  own=$(echo "$file" | cut -d/ -f3)
  inc=$(echo "$hit" | sed -E 's/.*#include "modules\/([^/]+)\/.*/\1/')
  if [ "$own" != "$inc" ]; then echo "layering: $hit"; bad=1; fi
done < <(grep -rnE '#include "modules/' src/modules)
exit $bad
