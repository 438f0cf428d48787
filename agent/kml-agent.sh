#!/system/bin/sh
# kml-agent.sh: kml's device-side snapshot agent.
#
# Runs as root on the device under Android's mksh + toybox (and under busybox sh / dash), fully
# detached, and every --interval seconds publishes ONE numbered snapshot directory:
#   $KML_DIR/snapshots/N/{kmemleak.txt,meta.txt,meminfo.txt,vmstat.txt,buddyinfo.txt,zoneinfo.txt,
#                         slabinfo.txt,pagetypeinfo.txt,kmsg.txt}
# written as snapshots/.partial-N/ and renamed to snapshots/N/ when complete. The host pulls N,
# verifies it against meta.txt, and deletes it; this script never deletes a published snapshot.
#
# Shell rules kept here: POSIX sh only (no `local`, no arrays, no [[ ]]); mksh arithmetic is 32-bit
# signed, so every number stays below 2^31 (epoch seconds are fine until 2038); busybox ash reads a
# leading 0 as octal, so digit strings are prefixed with 1 before arithmetic; mksh's echo expands
# backslashes, so echo only prints words and numbers we made, never device text.
#
# Scan protocol (default "double", see research kmemleak-kernel.md section 1):
#   start:      scan=off once (stop the auto-scan thread: it would flag leaks between our read and
#               our clear, and clear would then drop them unread)
#   each cycle: scan; wait >= 5 s (MSECS_MIN_AGE, and a new object needs a second scan with an
#               unchanged checksum); scan; read via a fresh fd (cat) into .partial-N; publish; clear
# "--protocol seed" reproduces the seed's init script loop: read; publish; clear; scan.
#
# Crash safety (why nothing is lost or numbered twice):
#   * seq is written (seq.tmp + rename) BEFORE anything of cycle N exists, so a restart after a crash
#     at any later point starts from N+1: a number is never reused. On ext4/f2fs journals, renames
#     commit in order, so if snapshots/N (or the host's later delete of it) survived a power cut,
#     the earlier seq rename did too. At start seq is also raised to the highest published N.
#   * clear runs only AFTER snapshots/N is published. A crash before the rename leaves a
#     .partial-N whose leaks were not cleared: they are still in the kernel and the next read
#     returns them again, so removing stale .partial-* at start loses nothing. A crash between
#     publish and clear makes the next snapshot repeat those records (a duplicate the host
#     dedups by address+jiffies), never a loss.
#   * clear is skipped when the read failed or kmemleak is disabled (clear on a disabled kmemleak
#     frees all its records).
#   * kmemleak writes and reads run in a subshell that ignores TERM/INT/HUP: a pending signal makes
#     the kernel cut a scan short and still return success (scan_should_stop()), i.e. a silently
#     useless scan.
#
# Exit codes (the same numbers as kml's host/errors.ts): 0 clean stop, 2 usage, 5 local I/O
# (directory not writable, corrupt seq file), 6 another agent is running in this directory.

KML_AGENT_VERSION=1

usage() {
  cat <<'EOF'
usage: kml-agent.sh [options]
  --dir DIR           agent directory (env KML_DIR; default /data/local/tmp/kml)
  --interval S        seconds between cycle starts (env KML_INTERVAL; default 600)
  --scan-wait S       seconds between the two scans, >= 5 (env KML_SCAN_WAIT; default 5)
  --protocol P        double (scan, wait, scan, read, clear) or seed (read, clear, scan)
                      (env KML_PROTOCOL; default double)
  --min-free-kb KB    skip a cycle when DIR has less free space (env KML_MIN_FREE_KB; default 51200)
  --kmemleak PATH     kmemleak file (env KML_KMEMLEAK; default /sys/kernel/debug/kmemleak)
  --kmemleak-cmd PATH where commands are written; default the --kmemleak path (tests only)
  --kmsg-source FILE  read kernel log lines from FILE instead of `dmesg` (tests only)
  --count N           stop after N cycles, 0 = run until SIGTERM (env KML_COUNT; default 0)
  --once              the same as --count 1
Runs until SIGTERM/SIGINT, which finish the current cycle. Exit: 0 ok, 2 usage, 5 I/O, 6 already running.
EOF
}

# ---------------------------------------------------------------------------------------- utils

log() {
  echo "$(date +%s) kml-agent[$$]: $*"
}

# agent.log grows by a line or two per cycle (a 2 s interval for a week is megabytes): past
# AGENT_LOG_MAX_KB it becomes agent.log.1 (one old copy kept) and the agent goes on in a fresh
# agent.log. Only when agent.log is where our output goes (kml's launch line): a test or a user
# running the agent in a terminal keeps their stdout.
AGENT_LOG_MAX_KB=${KML_AGENT_LOG_MAX_KB:-1024}
rotate_log() {
  rl_log=$dir/agent.log
  # -ef is not POSIX, but mksh (Android), busybox ash and dash all have it (the tests run all three)
  # shellcheck disable=SC3013
  if [ ! -f "$rl_log" ] || [ -L "$rl_log" ] || [ ! "$rl_log" -ef "/proc/$$/fd/1" ]; then return 0; fi
  rl_kb=$(du -k "$rl_log" 2>/dev/null) || return 0
  rl_kb=${rl_kb%%[!0-9]*}
  if [ -z "$rl_kb" ] || [ "$rl_kb" -le "$AGENT_LOG_MAX_KB" ]; then return 0; fi
  if mv -f "$rl_log" "$rl_log.1" 2>/dev/null; then
    exec >>"$rl_log" 2>&1
    log "agent.log was ${rl_kb} kB: the older lines are in agent.log.1"
  fi
}

usage_error() {
  echo "kml-agent: $*" >&2
  echo "kml-agent: run with --help for the options" >&2
  exit 2
}

fatal() { # fatal CODE MESSAGE
  fatal_code=$1
  shift
  echo "kml-agent: $*" >&2
  log "fatal: $*"
  exit "$fatal_code"
}

# is_uint V: V is 1-9 decimal digits (stays below 2^31 in mksh's 32-bit arithmetic).
is_uint() {
  case $1 in '' | *[!0-9]*) return 1 ;; esac
  [ ${#1} -le 9 ]
}

# strip0 DIGITS -> s0_v without leading zeros ("0" stays "0"): ash reads 010 as octal.
strip0() {
  s0_v=${1#"${1%%[!0]*}"}
  [ -n "$s0_v" ] || s0_v=0
}

# errno_of MESSAGE -> errno_word: the errno name in a shell/cat error message. Messages differ
# (mksh "echo: write: Operation not permitted", ash "write error: ...", busybox "can't create X:
# nonexistent directory") but all carry the strerror text.
errno_of() {
  case $1 in
    *"Operation not permitted"*) errno_word=EPERM ;;
    *"Device or resource busy"* | *"Resource busy"*) errno_word=EBUSY ;;
    *"Interrupted system call"*) errno_word=EINTR ;;
    *"No such file or directory"* | *"nonexistent directory"*) errno_word=ENOENT ;;
    *"Permission denied"*) errno_word=EACCES ;;
    *"Invalid argument"*) errno_word=EINVAL ;;
    *"No space left"*) errno_word=ENOSPC ;;
    *"Disk quota exceeded"*) errno_word=EDQUOT ;;
    *"Read-only file system"*) errno_word=EROFS ;;
    *"Input/output error"*) errno_word=EIO ;;
    *"Not a directory"*) errno_word=ENOTDIR ;;
    *"Is a directory"*) errno_word=EISDIR ;;
    *) errno_word=EUNKNOWN ;;
  esac
}

NL='
'

# set_err TEXT -> err_msg (its first line), errno_word. Steps capture their stderr with
# $( ... 2>&1 ) rather than into a file: on a full disk a file could not hold the message.
set_err() {
  err_msg=${1%%"$NL"*}
  errno_of "$err_msg"
}

add_error() { # add_error WORD: comma-separated error words for this cycle's meta.txt
  if [ -z "$cyc_errors" ]; then cyc_errors=$1; else cyc_errors="$cyc_errors,$1"; fi
}

add_unreadable() {
  if [ -z "$cyc_unreadable" ]; then cyc_unreadable=$1; else cyc_unreadable="$cyc_unreadable,$1"; fi
}

# ---------------------------------------------------------------------------------------- clock
# Durations in ms. `date +%s%N` (GNU, toybox) gives 1 ms resolution; busybox date has no %N, so
# the fallback is /proc/uptime's hundredths (10 ms). Values are taken modulo 1e8 ms (27.7 h) so
# they fit mksh's 32-bit arithmetic; ms_between undoes one wrap.

clock_init() {
  clk_t=$(date +%s%N 2>/dev/null)
  case $clk_t in
    '' | *[!0-9]*) clock_kind=uptime ;;
    *) if [ ${#clk_t} -ge 15 ]; then clock_kind=date_ns; else clock_kind=uptime; fi ;;
  esac
  if [ "$clock_kind" = date_ns ]; then clock_res_ms=1; else clock_res_ms=10; fi
}

now_ms() { # -> now_ms_v
  if [ "$clock_kind" = date_ns ]; then
    clk_t=$(date +%s%N)
    clk_s=${clk_t%?????????}
    clk_ns=${clk_t#"$clk_s"}
    clk_s5=${clk_s#"${clk_s%?????}"}
    clk_ms3=${clk_ns%??????}
    now_ms_v=$(((1$clk_s5 - 100000) * 1000 + 1$clk_ms3 - 1000))
  else
    # shellcheck disable=SC2034 # clk_rest takes the idle time we do not need
    read -r clk_up clk_rest </proc/uptime
    clk_i=${clk_up%.*}
    clk_f=${clk_up#*.}00
    clk_f=${clk_f%"${clk_f#??}"}
    now_ms_v=$((clk_i % 100000 * 1000 + (1$clk_f - 100) * 10))
  fi
}

ms_between() { # ms_between START END -> ms_v
  ms_v=$(($2 - $1))
  if [ "$ms_v" -lt 0 ]; then ms_v=$((ms_v + 100000000)); fi
}

# ------------------------------------------------------------------------------ kmemleak access

# kmemleak_state: ok | disabled (EPERM/EBUSY) | missing (ENOENT) | denied (EACCES) | error | unknown
note_kmemleak_errno() {
  case $1 in
    EPERM | EBUSY) kmemleak_state=disabled ;;
    ENOENT | ENOTDIR) kmemleak_state=missing ;;
    EACCES) kmemleak_state=denied ;;
    *) kmemleak_state=error ;;
  esac
}

# kml_write CMD -> kw_rc (0 ok), kw_errno, kw_ms. One command per open/write/close, as `echo`
# does. EINTR (or the subshell dying from a signal before its trap was set) is retried.
kml_write() {
  case $1 in
    off*)
      # Prefix matching in kmemleak_write(): any write starting with "off" disables kmemleak
      # until reboot. No caller passes one; this guard keeps it that way.
      log "refusing to write '$1': a kmemleak command starting with 'off' disables it until reboot"
      kw_rc=1
      kw_errno=EREFUSED
      kw_ms=0
      return 1
      ;;
  esac
  kw_try=0
  while :; do
    kw_try=$((kw_try + 1))
    now_ms
    kw_t0=$now_ms_v
    kw_out=$(
      trap '' TERM INT HUP
      { echo "$1" >"$kmemleak_cmd"; } 2>&1
    )
    kw_rc=$?
    now_ms
    ms_between "$kw_t0" "$now_ms_v"
    kw_ms=$ms_v
    if [ "$kw_rc" -eq 0 ]; then
      kw_errno=
      kmemleak_state=ok
      return 0
    fi
    set_err "$kw_out"
    kw_errno=$errno_word
    if [ "$kw_rc" -gt 128 ] && [ -z "$err_msg" ]; then kw_errno=EINTR; fi
    log "write '$1' to $kmemleak_cmd failed ($kw_errno, rc $kw_rc): $err_msg"
    if [ "$kw_errno" = EINTR ] && [ "$kw_try" -lt 3 ]; then continue; fi
    note_kmemleak_errno "$kw_errno"
    return 1
  done
}

# kml_read DEST -> kr_rc, kr_errno, kr_ms. A fresh fd per read (cat): reusing the fd a command
# was written to would skip the first bytes of the report (kmemleak_write advances *ppos).
kml_read() {
  kr_try=0
  while :; do
    kr_try=$((kr_try + 1))
    now_ms
    kr_t0=$now_ms_v
    kr_out=$(
      trap '' TERM INT HUP
      exec cat "$kmemleak" 2>&1 >"$1"
    )
    kr_rc=$?
    now_ms
    ms_between "$kr_t0" "$now_ms_v"
    kr_ms=$ms_v
    if [ "$kr_rc" -eq 0 ]; then
      kr_errno=
      return 0
    fi
    set_err "$kr_out"
    kr_errno=$errno_word
    if [ "$kr_rc" -gt 128 ] && [ -z "$err_msg" ]; then kr_errno=EINTR; fi
    log "read of $kmemleak failed ($kr_errno, rc $kr_rc): $err_msg"
    if [ "$kr_errno" = EINTR ] && [ "$kr_try" -lt 3 ]; then continue; fi
    if [ "$kr_errno" != ENOSPC ]; then note_kmemleak_errno "$kr_errno"; fi
    return 1
  done
}

# protected_sleep S: the wait between the two scans. It ignores TERM so a stop request cannot cut
# it short (the second scan would then come too early to report anything); the shell runs its
# TERM trap once the sleep has finished.
protected_sleep() {
  (
    trap '' TERM INT HUP
    exec sleep "$1"
  )
}

# --------------------------------------------------------------------------------- disk space

free_kb_of() { # free_kb_of DIR -> free_kb ("" when unknown)
  free_kb=
  # shellcheck disable=SC2046 # word splitting of "avail blocksize" is intended
  set -- $(stat -f -c '%a %S' "$1" 2>/dev/null)
  if is_uint "$1" && is_uint "$2" && [ "$2" -gt 0 ]; then
    if [ "$2" -ge 1024 ]; then
      fk_mul=$(($2 / 1024))
      if [ "$1" -gt $((2147483647 / fk_mul)) ]; then free_kb=2147483647; else free_kb=$(($1 * fk_mul)); fi
    else
      free_kb=$(($1 / (1024 / $2)))
    fi
    return 0
  fi
  # Fallback: POSIX df -k, last line, 4th field (Available).
  # shellcheck disable=SC2046
  set -- $(df -k "$1" 2>/dev/null | tail -n 1)
  if is_uint "$4"; then free_kb=$4; fi
}

# ---------------------------------------------------------------------------------- kernel log
# kmsg.txt holds the kernel log lines about OOM kills, low-memory-killer kills and kmemleak that
# are newer than the marker: the timestamp "[ sec.usec]" of the last such line already published,
# kept in kmsg.marker as "boot_id sec usec" (usec as printed, 6 digits; timestamps restart at each boot). The marker moves
# only after the snapshot is published, so a crash or skipped cycle repeats lines, never drops
# them. Lines without a timestamp (printk.time=0) count as time 0: they appear once per boot.

# Also allocation failures, and the OOM report's "Unreclaimable slab info:" table (its rows are
# "name  usedKB  totalKB": the biggest slab caches when the OOM killer ran, a kernel-leak clue).
KMSG_PATTERN='kmemleak|out of memory|oom-kill|oom_reaper|killed process|lowmemorykiller|lmkd|page allocation failure|unreclaimable slab info'
KMSG_PATTERN="$KMSG_PATTERN"'|^(<[0-9]+>)?\[ *[0-9]+\.[0-9]+\] [[:alnum:]_.:()-]+ +[0-9]+KB +[0-9]+KB *$'
# and the kernel lowmemorykiller's continuation lines (how much it freed, for whom, why)
KMSG_PATTERN="$KMSG_PATTERN"'|^(<[0-9]+>)?\[ *[0-9]+\.[0-9]+\] +(to free [0-9]+kB on behalf of|cache [0-9]+kB is below limit|Free memory is -?[0-9]+kB above reserved)'

load_kmsg_marker() {
  mk_s=-1
  mk_u=0
  if [ -f "$dir/kmsg.marker" ]; then
    mk_boot=
    mk_s_read=
    mk_u_read=
    read -r mk_boot mk_s_read mk_u_read <"$dir/kmsg.marker"
    if [ "$mk_boot" = "$boot_id" ] && is_uint "$mk_s_read" && is_uint "$mk_u_read"; then
      strip0 "$mk_s_read"
      mk_s=$s0_v
      mk_u=1$mk_u_read
    fi
  fi
}

# kmsg_ts LINE -> ts_s, ts_u (ts_u as 1uuuuuu to dodge octal; ts_s=0/ts_u=0 when absent)
kmsg_ts() {
  ts_s=0
  ts_u=0
  ts_l=${1#<*>}
  case $ts_l in
    '['*']'*) ;;
    *) return 0 ;;
  esac
  ts_l=${ts_l#?}
  ts_l=${ts_l%%]*}
  ts_l=${ts_l##* }
  ts_a=${ts_l%.*}
  ts_b=${ts_l#*.}
  if is_uint "$ts_a" && is_uint "$ts_b"; then
    strip0 "$ts_a"
    ts_s=$s0_v
    ts_u=1$ts_b
  fi
}

# collect_kmsg PART -> PART/kmsg.txt, kmsg_new_s/kmsg_new_u (the marker to store after publish)
collect_kmsg() {
  kmsg_new_s=$mk_s
  kmsg_new_u=$mk_u
  # The log is filtered on the fly (only the few matching lines touch the disk); the stderr of
  # both dmesg and grep comes back through fd 3.
  kc_out=$({
    {
      if [ -n "$kmsg_source" ]; then cat "$kmsg_source"; else dmesg; fi
    } 2>&3 | grep -i -E "$KMSG_PATTERN" >"$tmp_kmsg" 2>&3
  } 3>&1)
  if [ -n "$kc_out" ]; then
    set_err "$kc_out"
    if [ "$errno_word" = ENOSPC ]; then
      # A short $tmp_kmsg only delays lines: the marker never passes a line not published.
      cyc_nospace=1
    else
      add_unreadable kmsg
      return 0
    fi
  fi
  kc_line=0
  kc_first=0
  while IFS= read -r kc_text || [ -n "$kc_text" ]; do
    kc_line=$((kc_line + 1))
    kmsg_ts "$kc_text"
    if [ "$ts_s" -gt "$mk_s" ] || { [ "$ts_s" -eq "$mk_s" ] && [ "$ts_u" -gt "$mk_u" ]; }; then
      if [ "$kc_first" -eq 0 ]; then kc_first=$kc_line; fi
      if [ "$ts_s" -gt "$kmsg_new_s" ] || { [ "$ts_s" -eq "$kmsg_new_s" ] && [ "$ts_u" -gt "$kmsg_new_u" ]; }; then
        kmsg_new_s=$ts_s
        kmsg_new_u=$ts_u
      fi
    fi
  done <"$tmp_kmsg"
  if [ "$kc_first" -gt 0 ]; then
    kc_out=$(tail -n "+$kc_first" "$tmp_kmsg" 2>&1 >"$1/kmsg.txt")
  else
    kc_out=$(: 2>&1 >"$1/kmsg.txt")
  fi || {
    set_err "$kc_out"
    if [ "$errno_word" = ENOSPC ]; then cyc_nospace=1; fi
    add_error "kmsg:$errno_word"
  }
  : >"$tmp_kmsg" 2>/dev/null # free its blocks now (a builtin: no process), not at exit
}

store_kmsg_marker() {
  if [ "$kmsg_new_s" -ge 0 ] && { [ "$kmsg_new_s" != "$mk_s" ] || [ "$kmsg_new_u" != "$mk_u" ]; }; then
    if echo "$boot_id $kmsg_new_s ${kmsg_new_u#1}" >"$dir/kmsg.marker.tmp" 2>/dev/null &&
      mv -f "$dir/kmsg.marker.tmp" "$dir/kmsg.marker"; then
      mk_s=$kmsg_new_s
      mk_u=$kmsg_new_u
    fi
  fi
}

# ------------------------------------------------------------------------------- memory state

collect_memstate() { # collect_memstate PART
  for cm_name in meminfo vmstat buddyinfo zoneinfo slabinfo pagetypeinfo; do
    cm_out=
    if [ -r "/proc/$cm_name" ] && cm_out=$(exec cat "/proc/$cm_name" 2>&1 >"$1/$cm_name.txt"); then
      continue
    fi
    set_err "$cm_out"
    rm -f "$1/$cm_name.txt"
    if [ "$errno_word" = ENOSPC ]; then
      cyc_nospace=1
      log "no space left for $cm_name.txt"
    fi
    add_unreadable "$cm_name"
  done
}

# --------------------------------------------------------------------------------------- meta

SNAPSHOT_FILES='kmemleak.txt meminfo.txt vmstat.txt buddyinfo.txt zoneinfo.txt slabinfo.txt pagetypeinfo.txt kmsg.txt'

detect_hash_tool() {
  if command -v sha256sum >/dev/null 2>&1; then
    hash_tool=sha256sum
    hash_key=sha256
  elif command -v md5sum >/dev/null 2>&1; then
    hash_tool=md5sum
    hash_key=md5
  else
    hash_tool=
    hash_key=none
  fi
}

# write_meta PART N -> PART/meta.txt; non-zero (err_msg, errno_word set) when it could not be
# written. A failing echo does not change a block's status, so any stderr output counts.
write_meta() {
  wm_part=$1
  wm_n=$2
  wm_files=
  for wm_f in $SNAPSHOT_FILES; do
    if [ -f "$wm_part/$wm_f" ]; then wm_files="$wm_files $wm_f"; fi
  done
  # One wc and one hash process for all files (every fork+exec counts: ~30 ms under QEMU TCG).
  wm_sizes=
  wm_hashes=
  if [ -n "$wm_files" ]; then
    # shellcheck disable=SC2086 # $wm_files is a list of our fixed file names
    if ! wm_sizes=$(cd "$wm_part" 2>&1 && exec wc -c $wm_files 2>&1); then
      set_err "$wm_sizes"
      return 1
    fi
    if [ -n "$hash_tool" ]; then
      # shellcheck disable=SC2086
      if ! wm_hashes=$(cd "$wm_part" 2>&1 && exec "$hash_tool" $wm_files 2>&1); then
        set_err "$wm_hashes"
        return 1
      fi
    fi
  fi
  wm_bytes=0
  # shellcheck disable=SC2086 # split "size name" pairs
  set -- $wm_sizes
  while [ $# -ge 2 ]; do
    if [ "$2" = kmemleak.txt ]; then wm_bytes=$1; fi
    shift 2
  done
  wm_leaks=0
  if [ -f "$wm_part/kmemleak.txt" ]; then
    wm_leaks=$(grep -c '^unreferenced object' "$wm_part/kmemleak.txt" 2>/dev/null)
    is_uint "$wm_leaks" || wm_leaks=0
  fi
  wm_out=$({
    echo "seq=$wm_n"
    echo "boot_id=$boot_id"
    echo "uptime_s=$cyc_uptime"
    echo "wall_time=$cyc_wall"
    echo "protocol=$protocol"
    echo "scan_wait_s=$scan_wait"
    echo "scan1_ms=$cyc_scan1_ms"
    echo "scan2_ms=$cyc_scan2_ms"
    echo "read_ms=$cyc_read_ms"
    echo "clock=$clock_kind"
    echo "clock_res_ms=$clock_res_ms"
    echo "kmemleak_bytes=$wm_bytes"
    echo "leak_count=$wm_leaks"
    echo "kmemleak_state=$kmemleak_state"
    echo "errors=$cyc_errors"
    echo "unreadable=$cyc_unreadable"
    echo "agent_version=$KML_AGENT_VERSION"
    echo "agent_pid=$$"
    echo "hash=$hash_key"
    # shellcheck disable=SC2086
    set -- $wm_sizes
    while [ $# -ge 2 ]; do
      if [ "$2" != total ]; then echo "size.$2=$1"; fi
      shift 2
    done
    # shellcheck disable=SC2086 # "hex name" pairs (GNU marks binary mode with *name)
    set -- $wm_hashes
    while [ $# -ge 2 ]; do
      echo "$hash_key.${2#\*}=$1"
      shift 2
    done
  } 2>&1 >"$wm_part/meta.txt")
  wm_rc=$?
  set_err "$wm_out"
  [ "$wm_rc" -eq 0 ] && [ -z "$wm_out" ]
}

# ---------------------------------------------------------------------------------- heartbeat

# heartbeat_lines STATE: the heartbeat's text.
heartbeat_lines() {
  echo "pid=$$"
  echo "boot_id=$boot_id"
  echo "seq=$seq"
  echo "state=$1"
  echo "last_cycle_wall=$last_cycle_wall"
  echo "next_cycle_wall=$next_cycle_wall"
  echo "free_kb=$free_kb"
  echo "skipped_total=$skipped_total"
  echo "last_error=$last_error"
  echo "kmemleak=$kmemleak_state"
  echo "protocol=$protocol"
  echo "interval=$interval"
  echo "scan_wait_s=$scan_wait"
  echo "min_free_kb=$min_free_kb"
  echo "cycles=$cycles"
  echo "started_wall=$started_wall"
  echo "updated_wall=$hb_wall"
  echo "agent_version=$KML_AGENT_VERSION"
}

# write_heartbeat STATE: atomically (tmp + rename). On a full disk the tmp file cannot get a
# block; then the heartbeat is rewritten in place (it frees its own block first), because a
# stale "running" would hide the reason from the host.
write_heartbeat() {
  hb_wall=$(date +%s)
  if heartbeat_lines "$1" >"$dir/heartbeat.tmp" 2>/dev/null && [ -s "$dir/heartbeat.tmp" ] &&
    mv -f "$dir/heartbeat.tmp" "$dir/heartbeat" 2>/dev/null; then
    return 0
  fi
  rm -f "$dir/heartbeat.tmp"
  heartbeat_lines "$1" >"$dir/heartbeat" 2>/dev/null
}

# ----------------------------------------------------------------------------- pidfile lock
# agent.pid names the running agent. The check-and-take-over runs inside a mkdir mutex
# (agent.lock/, held for milliseconds) so two agents started at once cannot both take over a
# stale pidfile. A pidfile is stale when its pid is dead or /proc/PID/cmdline is not kml-agent.

is_running_agent() { # is_running_agent PID
  case $1 in '' | *[!0-9]*) return 1 ;; esac
  [ "$1" != "$$" ] || return 1
  [ -r "/proc/$1/cmdline" ] || return 1
  # The arguments are NUL-separated: tr makes them one line. Without tr (some toybox builds lack
  # it) grep reads the file as it is (toybox and GNU grep look past a NUL; busybox grep does not,
  # but busybox has tr). A missing tool must not make a live agent look dead.
  if ira_cmd=$(tr '\000' ' ' <"/proc/$1/cmdline" 2>/dev/null); then
    case $ira_cmd in *kml-agent*) return 0 ;; esac
    return 1
  fi
  grep -q -F kml-agent "/proc/$1/cmdline" 2>/dev/null
}

acquire_pidfile() {
  al_lock=$dir/agent.lock
  al_tries=0
  while ! mkdir "$al_lock" 2>/dev/null; do
    al_tries=$((al_tries + 1))
    if [ "$al_tries" -eq 10 ]; then
      # Held for 10 s: its owner died inside the few-ms critical section.
      log "removing stale lock $al_lock"
      rmdir "$al_lock" 2>/dev/null
    elif [ "$al_tries" -gt 20 ]; then
      fatal 5 "cannot take the lock $al_lock"
    fi
    sleep 1
  done
  al_old=
  if [ -f "$pidfile" ]; then
    IFS= read -r al_old <"$pidfile"
    if is_running_agent "$al_old"; then
      rmdir "$al_lock" 2>/dev/null
      echo "kml-agent: another agent (pid $al_old) is already running in $dir; stop it first (kill -TERM $al_old)" >&2
      exit 6
    fi
    log "taking over stale pidfile (pid '$al_old' is not a running kml-agent)"
  fi
  if ! al_out=$({ echo "$$" >"$pidfile.tmp" && mv -f "$pidfile.tmp" "$pidfile"; } 2>&1); then
    set_err "$al_out"
    rmdir "$al_lock" 2>/dev/null
    fatal 5 "cannot write $pidfile: $err_msg"
  fi
  rmdir "$al_lock" 2>/dev/null
}

release_pidfile() {
  rp_pid=
  if [ -f "$pidfile" ]; then IFS= read -r rp_pid <"$pidfile"; fi
  if [ "$rp_pid" = "$$" ]; then rm -f "$pidfile"; fi
}

# ------------------------------------------------------------------------------------ sequence

load_seq() {
  seq=0
  if [ -f "$dir/seq" ]; then
    ls_v=
    IFS= read -r ls_v <"$dir/seq"
    if ! is_uint "$ls_v"; then
      fatal 5 "corrupt $dir/seq ('$ls_v'): write the last snapshot number pulled into it, e.g. echo 42 > $dir/seq"
    fi
    strip0 "$ls_v"
    seq=$s0_v
  fi
  # Never below a published snapshot (belt and braces if seq was lost), nor below the last number
  # the ledger or skipped.log used: once kml has pulled and deleted every snapshot, a lost seq
  # file would otherwise start again at 1 in the same boot (the host keeps both, as a conflict).
  for ls_d in "$snapdir"/*; do
    ls_n=${ls_d##*/}
    is_uint "$ls_n" || continue
    case $ls_n in 0*) continue ;; esac
    if [ "$ls_n" -gt "$seq" ]; then seq=$ls_n; fi
  done
  for ls_f in "$dir/ledger" "$dir/skipped.log"; do
    [ -f "$ls_f" ] || continue
    ls_tail=$(tail -n 20 "$ls_f" 2>/dev/null) || continue
    while IFS= read -r ls_line; do
      case $ls_line in *seq=*) ;; *) continue ;; esac
      ls_n=${ls_line#*seq=}
      ls_n=${ls_n%% *}
      is_uint "$ls_n" || continue
      case $ls_n in 0*) continue ;; esac
      if [ "${#ls_n}" -le 9 ] && [ "$ls_n" -gt "$seq" ]; then seq=$ls_n; fi
    done <<EOF
$ls_tail
EOF
  done
}

store_seq() { # store_seq N: returns non-zero when N could not be persisted
  ss_out=$({ echo "$1" >"$dir/seq.tmp" && mv -f "$dir/seq.tmp" "$dir/seq"; } 2>&1)
  ss_rc=$?
  set_err "$ss_out"
  return "$ss_rc"
}

count_skipped() {
  skipped_total=0
  skip_pending=
  if [ -f "$dir/skipped.log" ]; then
    skipped_total=$(grep -c '^seq=' "$dir/skipped.log" 2>/dev/null)
    is_uint "$skipped_total" || skipped_total=0
  fi
}

# A skip that cannot be written (the disk is full: the usual reason to skip) waits in memory and
# goes out with the next skip, at the next cycle or at exit; without it the number would be a gap
# nobody accounts for. A torn line from a short write is ended by the newline the retry starts with.
record_skip() { # record_skip N REASON
  rs_line="seq=$1 boot_id=$boot_id wall_time=$(date +%s) reason=$2"
  if [ -n "$skip_pending" ]; then rs_line="$skip_pending$NL$rs_line"; fi
  if { echo "$rs_line" >>"$dir/skipped.log"; } 2>/dev/null; then skip_pending=; else skip_pending="$NL$rs_line"; fi
  skipped_total=$((skipped_total + 1))
  log "cycle $1 skipped: $2 (free_kb=$free_kb, min_free_kb=$min_free_kb)"
}

# -------------------------------------------------------------------------------------- ledger
# ledger: an append-only account of the agent's own work, for checks that do not go through kml
# (the soak harness reads it over adb after a run; kml itself never reads it). Lines:
#   seq=N boot_id=ID wall_time=S leak_count=L sha256.kmemleak.txt=HEX ...   one per published
#       snapshot, written right after the publish rename (the hashes are meta.txt's), then fsynced
#   start seq=S boot_id=ID wall_time=T pid=P   one per agent start; S = the last number used
#       before it. An S found neither as a published line nor in skipped.log is the cycle the
#       previous agent died in before publishing (nothing was cleared: nothing is lost).
# A line that cannot be written (disk full) waits in memory and goes out before the next one; a
# torn line left by a short write is ended by the newline the retry starts with.

ledger_sync_init() {
  # toybox (Android): fsync FILE; busybox and GNU: sync FILE (busybox/GNU fsync the file)
  if command -v fsync >/dev/null 2>&1; then ledger_sync=fsync; else ledger_sync=sync; fi
  ledger_pending=
}

ledger_append() { # ledger_append LINE
  if [ -n "$ledger_pending" ]; then la_text="$ledger_pending$NL$1"; else la_text=$1; fi
  if { echo "$la_text" >>"$dir/ledger"; } 2>/dev/null; then
    ledger_pending=
    "$ledger_sync" "$dir/ledger" >/dev/null 2>&1
    return 0
  fi
  ledger_pending="$NL$la_text"
  log "ledger line kept for later (write failed): ${1%% *}"
  return 1
}

# flush_pending: skipped.log and ledger lines that could not be written earlier.
flush_pending() {
  if [ -n "$skip_pending" ] && { echo "$skip_pending" >>"$dir/skipped.log"; } 2>/dev/null; then skip_pending=; fi
  if [ -n "$ledger_pending" ]; then
    fp_text=$ledger_pending
    ledger_pending=
    ledger_append "$fp_text"
  fi
}

# ledger_published N: the line of a snapshot this agent just published (globals of write_meta).
ledger_published() {
  lp_line="seq=$1 boot_id=$boot_id wall_time=$cyc_wall leak_count=$wm_leaks"
  # shellcheck disable=SC2086 # "hex name" pairs
  set -- $wm_hashes
  while [ $# -ge 2 ]; do
    lp_line="$lp_line $hash_key.${2#\*}=$1"
    shift 2
  done
  ledger_append "$lp_line"
}

# ledger_start: the start line; first, if the last number used was published but its line never
# written (the previous agent died between the rename and the append), that line from its meta.
ledger_start() {
  if [ "$seq" -gt 0 ] && [ -f "$snapdir/$seq/meta.txt" ] &&
    ! grep -q "^seq=$seq " "$dir/ledger" 2>/dev/null; then
    lr_line="seq=$seq"
    while IFS= read -r lr_kv || [ -n "$lr_kv" ]; do
      case $lr_kv in
        boot_id=* | wall_time=* | leak_count=* | sha256.*=* | md5.*=*) lr_line="$lr_line $lr_kv" ;;
      esac
    done <"$snapdir/$seq/meta.txt"
    ledger_append "$lr_line recovered=1"
  fi
  ledger_append "start seq=$seq boot_id=$boot_id wall_time=$(date +%s) pid=$$"
}

# --------------------------------------------------------------------------------------- cycle

note_stop() { # announce a stop request once, from the main flow (never from the trap)
  if [ "$stop_requested" = 1 ] && [ "$stop_announced" = 0 ]; then
    stop_announced=1
    log "stop requested (SIGTERM/SIGINT): exiting after the current step"
    write_heartbeat stopping
  fi
}

read_uptime() {
  cyc_uptime=
  # shellcheck disable=SC2034 # ru_rest takes the idle time we do not need
  read -r cyc_uptime ru_rest </proc/uptime 2>/dev/null
}

# run_cycle: one cycle; sets cycle_state (running|skipping) and last_error.
run_cycle() {
  cycle_state=running
  cyc_errors=$carry_errors # errors since the last published snapshot (scan=off, clear, seed scan)
  cyc_unreadable=
  cyc_nospace=0
  cyc_scan1_ms=
  cyc_scan2_ms=
  cyc_read_ms=
  free_kb_of "$dir"

  flush_pending
  n=$((seq + 1))
  if ! store_seq "$n"; then
    # Not persisted: N might be handed out again after a restart, so nothing may carry it.
    log "cannot persist seq $n ($errno_word: $err_msg): cycle skipped"
    last_error="seq_write:$errno_word"
    cycle_state=skipping
    return 0
  fi
  seq=$n

  if [ -n "$free_kb" ] && [ "$free_kb" -lt "$min_free_kb" ]; then
    record_skip "$n" low_space
    last_error=low_space
    cycle_state=skipping
    return 0
  fi

  part=$snapdir/.partial-$n
  if [ -e "$part" ]; then rm -rf "$part"; fi
  if ! mk_out=$(mkdir "$part" 2>&1); then
    set_err "$mk_out"
    record_skip "$n" "mkdir_$errno_word"
    last_error="mkdir:$errno_word"
    cycle_state=skipping
    return 0
  fi

  # Scans. Only writes to kmemleak; a failure is recorded and the cycle goes on, because the
  # report (records kept from earlier scans) and the memory state are still worth having.
  cyc_read_ok=0
  if [ "$protocol" = double ]; then
    if kml_write scan; then
      cyc_scan1_ms=$kw_ms
      note_stop
      protected_sleep "$scan_wait"
      note_stop
      if kml_write scan; then
        cyc_scan2_ms=$kw_ms
      else
        add_error "scan2:$kw_errno"
      fi
    else
      add_error "scan1:$kw_errno"
    fi
  else
    cyc_scan1_ms=$prev_scan_ms # the scan that ended the previous cycle produced this report
  fi
  note_stop

  read_uptime
  cyc_wall=$(date +%s)
  if kml_read "$part/kmemleak.txt"; then
    cyc_read_ok=1
    cyc_read_ms=$kr_ms
  else
    add_error "read:$kr_errno"
    if [ "$kr_errno" = ENOSPC ]; then cyc_nospace=1; fi
  fi
  collect_memstate "$part"
  collect_kmsg "$part"
  cyc_meta_ok=1
  if ! write_meta "$part" "$n"; then
    if [ "$errno_word" = ENOSPC ]; then cyc_nospace=1; fi
    cyc_meta_ok=0
    log "meta.txt of cycle $n not written ($errno_word): $err_msg"
  fi

  if [ "$cyc_nospace" = 1 ] || [ "$cyc_meta_ok" = 0 ]; then
    # Not published: a snapshot that did not fit, or one the host could not verify. Its leaks
    # were not cleared, so the next cycle reads them again.
    rm -rf "$part"
    if [ "$cyc_nospace" = 1 ]; then cs_reason=no_space; else cs_reason="meta_$errno_word"; fi
    record_skip "$n" "$cs_reason"
    last_error=$cs_reason
    cycle_state=skipping
    return 0
  fi

  if [ -e "$snapdir/$n" ]; then
    # Cannot happen while seq only grows; never overwrite (or mv into) a published snapshot.
    rm -rf "$part"
    log "snapshot $n already exists: cycle dropped"
    last_error=seq_collision
    return 0
  fi
  if ! mv_out=$(mv "$part" "$snapdir/$n" 2>&1); then
    set_err "$mv_out"
    rm -rf "$part"
    record_skip "$n" "publish_$errno_word"
    last_error="publish:$errno_word"
    cycle_state=skipping
    return 0
  fi
  ledger_published "$n"
  store_kmsg_marker
  carry_errors=
  log "snapshot $n published: leaks=$wm_leaks bytes=$wm_bytes scan1_ms=$cyc_scan1_ms scan2_ms=$cyc_scan2_ms read_ms=$cyc_read_ms errors=$cyc_errors"
  last_error=$cyc_errors

  # After publish: clear (and, in the seed protocol, the scan for the next cycle). Their errors
  # go into the heartbeat and the next snapshot's meta.
  if [ "$cyc_read_ok" = 1 ] && [ "$kmemleak_state" != disabled ]; then
    if ! kml_write clear; then
      add_carry "clear:$kw_errno"
    fi
  fi
  if [ "$protocol" = seed ]; then
    prev_scan_ms=
    if kml_write scan; then
      prev_scan_ms=$kw_ms
    else
      add_carry "scan:$kw_errno"
    fi
  fi
  if [ -n "$carry_errors" ]; then
    if [ -n "$last_error" ]; then last_error="$last_error,$carry_errors"; else last_error=$carry_errors; fi
  fi
  return 0
}

add_carry() {
  if [ -z "$carry_errors" ]; then carry_errors=$1; else carry_errors="$carry_errors,$1"; fi
}

# ---------------------------------------------------------------------------------------- main

parse_args() {
  dir=${KML_DIR:-/data/local/tmp/kml}
  interval=${KML_INTERVAL:-600}
  scan_wait=${KML_SCAN_WAIT:-5}
  protocol=${KML_PROTOCOL:-double}
  min_free_kb=${KML_MIN_FREE_KB:-51200}
  kmemleak=${KML_KMEMLEAK:-/sys/kernel/debug/kmemleak}
  kmemleak_cmd=${KML_KMEMLEAK_CMD:-}
  kmsg_source=${KML_KMSG_SOURCE:-}
  count=${KML_COUNT:-0}
  while [ $# -gt 0 ]; do
    pa_name=$1
    pa_val=
    pa_has=0
    shift
    case $pa_name in
      --*=*)
        pa_val=${pa_name#*=}
        pa_name=${pa_name%%=*}
        pa_has=1
        ;;
    esac
    case $pa_name in
      --once | --help | -h)
        if [ "$pa_has" = 1 ]; then usage_error "$pa_name takes no value"; fi
        ;;
      --dir | --interval | --scan-wait | --protocol | --min-free-kb | --kmemleak | --kmemleak-cmd | --kmsg-source | --count)
        if [ "$pa_has" = 0 ]; then
          [ $# -gt 0 ] || usage_error "$pa_name needs a value"
          pa_val=$1
          shift
        fi
        ;;
    esac
    case $pa_name in
      --dir) dir=$pa_val ;;
      --interval) interval=$pa_val ;;
      --scan-wait) scan_wait=$pa_val ;;
      --protocol) protocol=$pa_val ;;
      --min-free-kb) min_free_kb=$pa_val ;;
      --kmemleak) kmemleak=$pa_val ;;
      --kmemleak-cmd) kmemleak_cmd=$pa_val ;;
      --kmsg-source) kmsg_source=$pa_val ;;
      --count) count=$pa_val ;;
      --once) count=1 ;;
      --help | -h)
        usage
        exit 0
        ;;
      *) usage_error "unknown option: $pa_name" ;;
    esac
  done
  [ -n "$dir" ] || usage_error "--dir must not be empty"
  [ -n "$kmemleak" ] || usage_error "--kmemleak must not be empty"
  [ -n "$kmemleak_cmd" ] || kmemleak_cmd=$kmemleak
  if ! is_uint "$interval" || [ "$interval" -lt 1 ]; then
    usage_error "--interval must be a whole number of seconds >= 1 (got '$interval')"
  fi
  if ! is_uint "$scan_wait" || [ "$scan_wait" -lt 5 ]; then
    usage_error "--scan-wait must be a whole number of seconds >= 5: kmemleak reports nothing younger than 5 s (MSECS_MIN_AGE) (got '$scan_wait')"
  fi
  is_uint "$min_free_kb" || usage_error "--min-free-kb must be a whole number of KiB (got '$min_free_kb')"
  is_uint "$count" || usage_error "--count must be a whole number (got '$count')"
  case $protocol in
    double | seed) ;;
    *) usage_error "--protocol must be double or seed (got '$protocol')" ;;
  esac
  # Leading zeros would read as octal in ash arithmetic.
  strip0 "$interval"
  interval=$s0_v
  strip0 "$scan_wait"
  scan_wait=$s0_v
  strip0 "$min_free_kb"
  min_free_kb=$s0_v
  strip0 "$count"
  count=$s0_v
}

on_signal() {
  # Only set a flag: the main flow writes files, a trap writing them could interleave.
  stop_requested=1
}

main() {
  parse_args "$@"
  umask 022
  snapdir=$dir/snapshots
  pidfile=$dir/agent.pid
  if ! mkdir -p "$snapdir" 2>/dev/null || [ ! -w "$dir" ] || [ ! -w "$snapdir" ]; then
    echo "kml-agent: cannot create or write $snapdir" >&2
    exit 5
  fi
  tmp_kmsg=$dir/.kmsg.$$
  stop_requested=0
  stop_announced=0
  trap on_signal TERM INT
  trap '' HUP PIPE # PIPE: a closed log stream must not kill the agent mid-cycle

  acquire_pidfile
  # Stale partials were never published and their leaks never cleared (see the header).
  rm -rf "$snapdir"/.partial-*
  rm -f "$dir"/.kmsg.* "$dir/heartbeat.tmp" "$dir/seq.tmp" 2>/dev/null

  boot_id=unknown
  if [ -r /proc/sys/kernel/random/boot_id ]; then read -r boot_id </proc/sys/kernel/random/boot_id; fi
  clock_init
  detect_hash_tool
  load_seq
  count_skipped
  load_kmsg_marker
  ledger_sync_init
  ledger_start
  started_wall=$(date +%s)
  last_cycle_wall=
  next_cycle_wall=
  last_error=
  carry_errors=
  prev_scan_ms=
  cycles=0
  kmemleak_state=unknown
  free_kb_of "$dir"
  log "started: version=$KML_AGENT_VERSION dir=$dir protocol=$protocol interval=$interval scan_wait=$scan_wait min_free_kb=$min_free_kb kmemleak=$kmemleak seq=$seq boot_id=$boot_id clock=$clock_kind hash=$hash_key"
  write_heartbeat running

  if [ "$protocol" = double ]; then
    # Stop the auto-scan thread so only our scans flag leaks (never "off": that disables kmemleak).
    if ! kml_write scan=off; then
      carry_errors="scan_off:$kw_errno"
      last_error=$carry_errors
    fi
  fi

  while [ "$stop_requested" = 0 ]; do
    cycle_start=$(date +%s)
    run_cycle
    cycles=$((cycles + 1))
    last_cycle_wall=$cycle_start
    rotate_log
    if [ "$count" -gt 0 ] && [ "$cycles" -ge "$count" ]; then break; fi
    [ "$stop_requested" = 0 ] || break
    next_cycle_wall=$((cycle_start + interval))
    write_heartbeat "$cycle_state"
    sl_left=$((next_cycle_wall - $(date +%s)))
    if [ "$sl_left" -gt 0 ]; then
      # In the background + wait, so SIGTERM ends the wait at once (wait returns > 128).
      sleep "$sl_left" &
      sl_pid=$!
      wait "$sl_pid"
      kill "$sl_pid" 2>/dev/null
      wait "$sl_pid" 2>/dev/null
    fi
  done

  next_cycle_wall=
  if [ "$stop_requested" = 1 ]; then note_stop; fi
  write_heartbeat stopped
  rm -f "$tmp_kmsg"
  flush_pending
  release_pidfile
  log "stopped after $cycles cycle(s), last seq $seq"
  exit 0
}

# KML_AGENT_LIB=1 loads the functions without running (for tests of single functions).
if [ "${KML_AGENT_LIB:-0}" != 1 ]; then
  main "$@"
fi
