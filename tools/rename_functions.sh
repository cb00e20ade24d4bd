#!/bin/sh
# One naming scheme for tinyconv's autograd Functions (issue 15, part 9): <Op>Fn.
#
# The layer Functions were 30 ``*Fn`` classes (ReLUFn, LinearFn, CrossEntropyFn, ...) and 5
# ``*Function`` ones (Conv2dFunction and the pooling ones); this renames every class
# ``<Op>Function`` defined under tinyconv/ to ``<Op>Fn``, everywhere git tracks a file
# (code, tests, docs, benchmarks), as whole words.  It is mechanical and idempotent: after a
# merge that brings more ``*Function`` classes or uses, run it again (from any directory):
#
#     sh tools/rename_functions.sh
#
# then ``python docs/build_docs.py --check``.  It stops, renaming nothing, if a new name is
# already taken.
set -eu
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"

names=$(git grep -hoE '^class [A-Za-z_][A-Za-z0-9_]*Function\(' -- 'tinyconv/*.py' \
        | sed -E 's/^class ([A-Za-z0-9_]*)Function\(/\1/' | sort -u)
[ -n "$names" ] || { echo "rename_functions: no *Function class left"; exit 0; }

for n in $names; do
    if git grep -qE "\\b${n}Fn\\b" -- .; then
        echo "rename_functions: ${n}Fn already exists; rename ${n}Function by hand" >&2
        exit 1
    fi
done

alternatives=$(echo "$names" | paste -sd'|' -)
files=$(git grep -lE "\\b(${alternatives})Function\\b" -- . ':!tools/rename_functions.sh')
echo "$files" | xargs sed -i -E "s/\\b(${alternatives})Function\\b/\\1Fn/g"
echo "rename_functions: $(echo "$names" | sed 's/$/Function/' | paste -sd' ' -) -> *Fn in" \
     "$(echo "$files" | wc -l) files"
