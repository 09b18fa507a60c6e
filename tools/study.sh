#!/usr/bin/env bash
# The proxy study (issue 26) over several working sessions, at one commit.
#
#   tools/study.sh start    pin the study at HEAD (writes results/proxy-next/STUDY_COMMIT and commits it),
#                           then run it
#   tools/study.sh resume   a later session (fresh checkout, empty cache): run it again at the pinned commit;
#                           what earlier sessions committed to results/proxy-next is reused, not retrained
#   tools/study.sh status   the pinned commit, the records so far, whether a reproduction is running here
#   tools/study.sh finish   the study is complete: results/proxy-next replaces results/proxy (one commit)
#
# How: `make regenerate SCALE=proxy` runs in a detached worktree at the pinned commit ($REPRO, default
# ../repro) with its own cache ($EQUSS_CACHE, default ../repro-cache); its results/proxy starts from
# this checkout's results/proxy-next (the committed records: runs.run takes a record whose code
# fingerprint matches as the cached run, and make skips a table whose output is there), and
# tools/commit_results.py --dest results/proxy-next commits every finished record here every
# $EVERY seconds (default 600).  results/proxy stays whole (and checked by the tests) meanwhile.
# Change no code under equss/ while it runs: a record names the pinned commit and the code fingerprint.
# Options for the run (environment): EXECUTOR, WORKERS, THREADS (passed to make), EQUSS_DATA.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NEXT=results/proxy-next
PIN=$ROOT/$NEXT/STUDY_COMMIT
REPRO=${REPRO:-$ROOT/../repro}
export EQUSS_CACHE=${EQUSS_CACHE:-$ROOT/../repro-cache}
EVERY=${EVERY:-600}
V=$ROOT/.venv
# the study's layout (docs/study.md): 2 workers x 1 thread on 2 cores; the thread count is pinned (numbers depend on it)
EXECUTOR=${EXECUTOR:-local}; WORKERS=${WORKERS:-2}; THREADS=${THREADS:-1}
cd "$ROOT"

die() { echo "study: $*" >&2; exit 2; }

pinned() { [ -f "$PIN" ] || die "no study pinned yet ($NEXT/STUDY_COMMIT): tools/study.sh start"; cat "$PIN"; }

run() {
  local commit; commit=$(pinned)
  [ -x "$V/bin/python" ] || die "no venv: make setup"
  git cat-file -e "$commit^{commit}" 2>/dev/null || die "pinned commit $commit is not in this repository"
  if [ ! -d "$REPRO" ]; then
    git worktree prune
    git worktree add --detach "$REPRO" "$commit" >/dev/null
  fi
  [ "$(git -C "$REPRO" rev-parse HEAD)" = "$commit" ] || die "$REPRO is not at the pinned commit $commit"
  # the pinned checkout's results/proxy: the study's records so far, nothing of the earlier results
  rm -rf "$REPRO/results/proxy"
  mkdir -p "$REPRO/results/proxy"
  if [ -d "$NEXT" ]; then cp -a "$NEXT/." "$REPRO/results/proxy/"; fi
  rm -f "$REPRO/results/proxy/STUDY_COMMIT"
  touch "$V/.installed"  # keep make from reinstalling into the shared venv
  echo "study: at $commit in $REPRO, cache $EQUSS_CACHE; records committed to $NEXT every ${EVERY}s"
  "$V/bin/python" tools/commit_results.py "$REPRO" --dest "$NEXT" --every "$EVERY" &
  local committer=$!
  trap 'kill $committer 2>/dev/null || true' EXIT
  (cd "$REPRO" && PYTHONPATH=$REPRO make regenerate SCALE=proxy VENV="$V" \
      ${EXECUTOR:+EXECUTOR=$EXECUTOR} ${WORKERS:+WORKERS=$WORKERS} ${THREADS:+THREADS=$THREADS})
  "$V/bin/python" tools/commit_results.py "$REPRO" --dest "$NEXT" --once
}

case "${1:-}" in
  start)
    [ -f "$PIN" ] && die "a study is already pinned at $(cat "$PIN"): tools/study.sh resume"
    [ -z "$(git status --porcelain -- equss notebooks Makefile)" ] || die "uncommitted changes in equss/, notebooks/ or the Makefile"
    mkdir -p "$NEXT"
    git rev-parse HEAD > "$PIN"
    git add "$PIN" && git commit -q -m "study: pinned at $(cat "$PIN")" -- "$PIN"
    run ;;
  resume) run ;;
  status)
    commit=$(pinned) || exit 2
    echo "pinned: $commit"
    echo "records: $(find "$NEXT/runs" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l) in $NEXT/runs"
    ls "$NEXT" 2>/dev/null | grep -E '\.(csv|png)$' | sed 's/^/done: /' || true
    pgrep -af "make regenerate SCALE=proxy" >/dev/null && echo "running here" || echo "not running here" ;;
  finish)
    pinned >/dev/null
    [ -f "$NEXT/claims.md" ] || die "the study is not complete ($NEXT/claims.md missing)"
    git rm -r -q results/proxy
    git mv "$NEXT" results/proxy
    git rm -q results/proxy/STUDY_COMMIT
    "$V/bin/python" tools/update_readme.py
    git commit -q -m "study complete: results/proxy regenerated at one commit" -- results README.md
    echo "study: results/proxy replaced; next: make models, the README's lead" ;;
  *) sed -n '2,18p' "$0"; exit 2 ;;
esac
