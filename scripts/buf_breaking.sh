#!/usr/bin/env bash
# `buf breaking` over the contract's history: every commit that changed protos/ since the
# contract came under buf (the commit that added buf.yaml) is compared with its parent,
# and the working tree with HEAD. Checking each commit, not only HEAD against main, also
# holds on main itself (CI), where several commits can land at once.
#
# A commit that breaks the contract on purpose (while the API has no outside users)
# says so with a trailer line in its message:
#     Contract-Break: intended
# and is reported but not failed. Rules: buf.yaml's `breaking` section (PACKAGE).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
buf=${BUF:-$root/node_modules/.bin/buf}
# The rules, for both sides of every comparison: an old commit has no buf.yaml of its own.
# A v1 config: it takes the input (the protos/ subdirectory of a commit) as the module
# root, where a v2 one would expect the module at its own modules path.
config='{"version":"v1","breaking":{"use":["PACKAGE"]}}'

# Each commit's protos/ is taken out with git archive: buf's own git input clones the
# repository shallowly (50 commits), so an older commit's parent is missing from it.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
extract() { # extract COMMIT DIR
  mkdir -p "$2"
  git archive "$1" protos | tar -x -C "$2"
}

status=0
check() { # check INPUT AGAINST LABEL [--config JSON]
  if ! "$buf" breaking "$1" --against "$2" "${@:4}"; then
    echo "buf breaking: $3 breaks the contract (see above)" >&2
    status=1
  fi
}

if git rev-parse -q --verify HEAD >/dev/null; then
  start=$(git log --diff-filter=A --format=%H -- buf.yaml | tail -n 1)
  if [ -n "$start" ]; then
    checked=0
    for commit in $(git rev-list --reverse "$start..HEAD" -- protos/); do
      git rev-parse -q --verify "$commit~1" >/dev/null || continue
      subject=$(git log -1 --format=%s "$commit")
      if git log -1 --format=%B "$commit" | grep -qx 'Contract-Break: intended'; then
        echo "buf breaking: ${commit:0:10} ($subject) is a declared, intended break"
        continue
      fi
      new="$scratch/${commit:0:10}-new" old="$scratch/${commit:0:10}-old"
      extract "$commit" "$new"
      extract "$commit~1" "$old"
      check "$new/protos" "$old/protos" "${commit:0:10} ($subject)" --config "$config"
      checked=$((checked + 1))
    done
    echo "buf breaking: $checked commit(s) since ${start:0:10} checked"
  fi
  # The working tree is the workspace of buf.yaml, whose rules are the same.
  check protos ".git#ref=HEAD,subdir=protos" "the working tree"
fi
exit $status
