# Seam's kernel-matrix scenario (POSIX sh: busybox ash in the guests, the host's sh natively).
# Env: SEAM (binary: the testkit build, for `seam workload`), CG (cgroup2 mount), WORK (scratch
# dir), NODE (name), RUNS (lines of "NAME PROBE..." : one `seam run` per line, with those probes
# disabled).
# Prints sections between "=====SEAM-BEGIN <name>=====" and "=====SEAM-END <name>=====".
set -u
DATA="$WORK/data"

section() { # name, then the text on stdin
    echo "=====SEAM-BEGIN $1====="
    cat
    echo
    echo "=====SEAM-END $1====="
}

now_ms() { # milliseconds since boot, from /proc/uptime (10 ms resolution)
    read -r up _ </proc/uptime
    s=${up%.*}
    c=${up#*.}
    c=${c#0}
    echo $((s * 1000 + c * 10))
}

wait_file() { # path, tenths of a second at most
    n=0
    while [ ! -s "$1" ] && [ "$n" -lt "$2" ]; do
        sleep 0.1
        n=$((n + 1))
    done
    [ -s "$1" ]
}

workload() { # cgroup, comm, args...
    cg=$1
    comm=$2
    shift 2
    "$SEAM" workload --cgroup "seam-kt/$cg" --comm "$comm" "$@" </dev/null
}

setup() {
    mkdir -p "$WORK" "$DATA/a" "$DATA/b" "$CG/seam-kt/a" "$CG/seam-kt/b"
    echo "a's notes" >"$DATA/a/notes.txt"
    echo "b's customers" >"$DATA/b/secret.txt"
    cat >"$WORK/tenants.toml" <<TOML
[[tenant]]
name = "a"
cgroups = ["seam-kt/a"]
paths = ["$DATA/a"]

[[tenant]]
name = "b"
cgroups = ["seam-kt/b"]
paths = ["$DATA/b"]

[[rule]]
id = "cross-tenant-network"
severity = "high"
description = "A tenant's process connected to another tenant's endpoint"
expr = "trace.has(net.*).where(tenant != null and peer.tenant != null and peer.tenant != tenant and not peer.shared)"

[[rule]]
id = "cross-tenant-file"
severity = "high"
description = "A tenant's process accessed another tenant's files"
expr = "trace.has(file.*).where(tenant != null and file.tenant != null and file.tenant != tenant and not file.shared)"
TOML
}

teardown() {
    for cg in a b; do
        for pid in $(cat "$CG/seam-kt/$cg/cgroup.procs" 2>/dev/null); do kill -9 "$pid"; done
        rmdir "$CG/seam-kt/$cg" 2>/dev/null
    done
    rmdir "$CG/seam-kt" 2>/dev/null
    rm -rf "$WORK"
}

# A -> A and A -> B over TCP, A -> B over UDP, then A reads its own file and B's, and truncates, renames and
# unlinks B's files.
crossings() { # dir
    rm -f "$1/a.port" "$1/b.port"
    workload a web-a tcp-listen --addr 127.0.0.1:0 --port-file "$1/a.port" &
    la=$!
    workload b db-b tcp-listen --addr 127.0.0.1:0 --port-file "$1/b.port" &
    lb=$!
    if wait_file "$1/a.port" 300 && wait_file "$1/b.port" 300; then
        echo "a_port=$(cat "$1/a.port")"
        echo "b_port=$(cat "$1/b.port")"
        workload a client-a tcp-connect --addr "127.0.0.1:$(cat "$1/a.port")" || echo "error=connect a->a failed"
        workload a client-a tcp-connect --addr "127.0.0.1:$(cat "$1/b.port")" || echo "error=connect a->b failed"
    else
        echo "error=listeners did not start"
        kill -9 "$la" "$lb" 2>/dev/null
    fi
    wait "$la" "$lb"
    # A -> B over UDP: paired from both ends' first packets (cgroup_skb egress and ingress).
    workload b dns-b udp-recv --addr 127.0.0.1:0 --port-file "$1/u.port" &
    lu=$!
    if wait_file "$1/u.port" 300; then
        echo "u_port=$(cat "$1/u.port")"
        workload a client-a udp-send --addr "127.0.0.1:$(cat "$1/u.port")" ||
            echo "error=udp a->b failed"
    else
        echo "error=udp listener did not start"
        kill -9 "$lu" 2>/dev/null
    fi
    wait "$lu"
    workload a app-a file-op --op read --path "$DATA/a/notes.txt" || echo "error=own read failed"
    workload a app-a file-op --op read --path "$DATA/b/secret.txt" || echo "error=cross read failed"
    # The other file hooks (path_truncate, path_rename, path_unlink, or their syscalls).
    for f in trunc.txt old.txt gone.txt; do echo "b's $f" >"$DATA/b/$f"; done
    rm -f "$DATA/b/new.txt"
    workload a app-a file-op --op truncate --path "$DATA/b/trunc.txt" ||
        echo "error=cross truncate failed"
    workload a app-a file-op --op rename --path "$DATA/b/old.txt" --to "$DATA/b/new.txt" ||
        echo "error=cross rename failed"
    workload a app-a file-op --op unlink --path "$DATA/b/gone.txt" || echo "error=cross unlink failed"
    # A failed attempt (ENOENT): only the syscall tracepoints see it.
    workload a app-a file-op --op read --path "$DATA/b/missing.txt" --expect-errno 2 ||
        echo "error=failed attempt did not fail with ENOENT"
    echo "b_missing=$DATA/b/missing.txt"
    # A read an LSM refuses after lookup and DAC (Landlock confines the reader to A's files).
    echo "b's locked file" >"$DATA/b/locked.txt"
    workload a app-a --landlock-allow-read "$DATA/a" \
        file-op --op read --path "$DATA/b/locked.txt" --expect-errno 13 ||
        echo "error=the Landlock-refused read did not fail with EACCES"
    echo "b_locked=$DATA/b/locked.txt"
    echo "a_file=$DATA/a/notes.txt"
    echo "b_file=$DATA/b/secret.txt"
    echo "b_dir=$DATA/b/"
}

run() { # name, probes to disable...
    name=$1
    shift
    d="$WORK/run-$name"
    mkdir -p "$d/rules"
    cp "$WORK/tenants.toml" "$d/rules/"
    disable=""
    for p in "$@"; do disable="$disable --disable-probe $p"; done
    t0=$(now_ms)
    # shellcheck disable=SC2086
    NO_COLOR=1 SEAM_LOG=warn "$SEAM" run --rules "$d/rules" --feed-file "$d/feed.jsonl" \
        --ready-file "$d/ready.json" --stats-file "$d/stats.json" --quiet $disable \
        2>"$d/agent.log" </dev/null &
    agent=$!
    n=0
    while [ ! -s "$d/ready.json" ] && kill -0 "$agent" 2>/dev/null && [ "$n" -lt 1200 ]; do
        sleep 0.05
        n=$((n + 1))
    done
    t1=$(now_ms)
    {
        echo "ready_ms=$((t1 - t0))"
        if [ -s "$d/ready.json" ]; then
            crossings "$d"
            t2=$(now_ms)
            echo "scenario_ms=$((t2 - t1))"
        else
            echo "error=the agent did not become ready"
        fi
        kill -INT "$agent" 2>/dev/null
        wait "$agent"
        echo "exit=$?"
    } >"$d/meta" 2>&1
    section "run/$name/meta" <"$d/meta"
    section "run/$name/ready" <"$d/ready.json" 2>/dev/null || echo "{}" | section "run/$name/ready"
    section "run/$name/feed" <"$d/feed.jsonl" 2>/dev/null || : | section "run/$name/feed"
    tail -n 40 "$d/agent.log" | section "run/$name/log"
}

teardown
setup
t0=$(now_ms)
NO_COLOR=1 SEAM_LOG=error "$SEAM" fingerprint --node "$NODE" --output "$WORK/fingerprint.json" \
    2>"$WORK/fp.log" </dev/null
rc=$?
printf 'fingerprint_ms=%s\nexit=%s\n' "$(($(now_ms) - t0))" "$rc" | section meta
section fingerprint <"$WORK/fingerprint.json" 2>/dev/null || section fingerprint <"$WORK/fp.log"
echo "$RUNS" | while read -r line; do
    [ -n "$line" ] || continue
    # shellcheck disable=SC2086
    run $line
done
teardown
