# shellcheck shell=bash
# prune-cache.sh - sourced by build-kernel and make-initramfs: drop old cache outputs.
#
# Every change to kml_leaky, the guest files or these scripts makes a new kernel-<hash>/ (9 MB)
# or initramfs-<hash>.cpio.gz (1.2 MB) beside the old ones, which nothing uses again. Keep the
# newest few; never remove the one just made, nor one a lab device still names (its state files
# under dev-*/ in the cache or the lab state folder) or a running process has on its command
# line (QEMU's -kernel/-initrd).
#
# prune_cache CACHE GLOB KEEP CURRENT   e.g. prune_cache "$CACHE" 'kernel-*' 3 "$OUT"
prune_cache() {
    local cache=$1 glob=$2 keep=$3 current=$4 n=0 entry entries state
    # Lab device state folders, where host/lab/paths.ts puts them (labStateDir).
    if [ -n "${KML_STATE_DIR:-}" ]; then state=$KML_STATE_DIR/lab
    elif [ -n "${XDG_RUNTIME_DIR:-}" ]; then state=$XDG_RUNTIME_DIR/kml/lab
    else state=${HOME:-/root}/.cache/kml/lab
    fi
    # Newest first (by modification time); names are ours: <prefix>-<16 hex digits>[.cpio.gz].
    # shellcheck disable=SC2086 # $glob is a pattern: it must expand
    entries=$(ls -1td -- "$cache"/$glob 2>/dev/null) || true
    while IFS= read -r entry; do
        [ -n "$entry" ] || continue
        case $entry in *.tmp.*) continue ;; esac
        n=$((n + 1))
        [ "$n" -le "$keep" ] && continue
        [ "$entry" = "$current" ] && continue
        if grep -rqsF -- "$entry" "$cache"/dev-*/ "$state"/dev-*/ 2>/dev/null; then continue; fi
        # (no pipeline: under pipefail a grep -q that stops early would make it fail)
        if grep -qsaF -- "$entry" /proc/[0-9]*/cmdline; then continue; fi
        printf '[prune-cache] removing old %s\n' "$entry" >&2
        rm -rf -- "$entry"
        case $entry in */kernel-*) rm -f -- "$cache/build-${entry##*/kernel-}.log" ;; esac
    done <<<"$entries"
}
