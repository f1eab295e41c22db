#!/usr/bin/env bash
# Build and smoke-test the cds-service image on a machine that has no Docker daemon and cannot
# reach a container registry, with Debian's own tools only (podman, buildah, runc, debootstrap,
# podman-compose). The production path stays `docker build -f docker/Dockerfile .` on
# python:3.11-slim; this script builds the same Dockerfile on a local Debian base instead.
#
#   docker/build-local.sh              base image (cached) + service image, then the image smoke tests
#   docker/build-local.sh --compose    ... + stand-in PostgreSQL and nginx images, then the compose tests too
#   docker/build-local.sh --no-test    build only (the test suite calls it this way)
#   docker/build-local.sh --print-conf print the containers.conf path to use as CONTAINERS_CONF
#
# Settings (environment):
#   DEBIAN_MIRROR        mirror for debootstrap and apt in the stand-ins (default: the one apt uses)
#   CDS_BUILD_DIR        where the generated containers.conf and logs go (default /var/tmp/cds-service-build)
#   CDS_IMAGE            tag of the service image (default localhost/cds-service:local)
#   CDS_CA_BUNDLE        CA bundle mounted read-only into the build steps (default: the host's), for
#                        networks whose HTTPS proxy re-signs certificates; never copied into an image
#   CDS_REBUILD_BASE=1   rebuild the base image even if it exists
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${CDS_BUILD_DIR:-/var/tmp/cds-service-build}"
CDS_IMAGE="${CDS_IMAGE:-localhost/cds-service:local}"
SUITE=bookworm
# The base image plays python:3.11-slim-bookworm: Debian's Python 3.11 with venv, `python` on PATH.
BASE_PACKAGES="python3.11,python3.11-venv,python3-venv,python-is-python3,ca-certificates"
BASE_VERSION=1  # bump when the recipe of the base changes
BASE_IMAGE="localhost/cds-base:${SUITE}-v${BASE_VERSION}"
POSTGRES_IMAGE="localhost/cds-standin-postgres:15"
NGINX_IMAGE="localhost/cds-standin-nginx:1.22"
CA_BUNDLE="${CDS_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

compose=0
run_tests=1
for arg in "$@"; do
    case "$arg" in
        --compose) compose=1 ;;
        --no-test) run_tests=0 ;;
        --print-conf) print_conf=1 ;;
        -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "build-local.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    esac
done

log() { echo "build-local.sh: $*" >&2; }

mkdir -p "$BUILD_DIR"

# podman's defaults would raise nofile/nproc in every container above what this host permits,
# and crun refuses some cgroup set-ups: pin runc and limits within the host's hard limits.
write_containers_conf() {
    local nofile nproc
    nofile="$(ulimit -Hn)"; [ "$nofile" = unlimited ] && nofile=1048576
    nproc="$(ulimit -Hu)"; [ "$nproc" = unlimited ] && nproc=32768
    [ "$nofile" -gt 65536 ] && nofile=65536
    [ "$nproc" -gt 32768 ] && nproc=32768
    cat > "$BUILD_DIR/containers.conf.new" <<EOF
# written by docker/build-local.sh
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
runtime = "runc"
EOF
    mv "$BUILD_DIR/containers.conf.new" "$BUILD_DIR/containers.conf"
}
write_containers_conf
export CONTAINERS_CONF="$BUILD_DIR/containers.conf"

if [ "${print_conf:-0}" = 1 ]; then
    echo "$CONTAINERS_CONF"
    exit 0
fi

for tool in podman debootstrap; do
    command -v "$tool" >/dev/null || { log "needs $tool (apt-get install podman buildah runc debootstrap podman-compose uidmap slirp4netns fuse-overlayfs)"; exit 1; }
done

debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    local found
    found="$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -v security | grep -oE 'https?://[^ ]+' | head -n1 || true)"
    echo "${found:-http://deb.debian.org/debian}"
}

# The host's CA bundle, for build steps that fetch over HTTPS (pip): read-only, never in a layer.
ca_args=()
if [ -f "$CA_BUNDLE" ]; then
    ca_args=(-v "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro"
             -v "$ROOT/docker/local/pip.conf:/etc/pip.conf:ro")
fi

# Build output goes to a log file under $BUILD_DIR; its tail is shown when a step fails.
quietly() {
    local logfile="$BUILD_DIR/$1.log"; shift
    if ! "$@" > "$logfile" 2>&1; then
        tail -n 40 "$logfile" >&2
        log "failed; the whole output is in $logfile"
        return 1
    fi
}

timed() {
    local label="$1"; shift
    local start=$SECONDS
    "$@"
    log "$label took $((SECONDS - start)) s"
}

build_base() {
    if [ "${CDS_REBUILD_BASE:-0}" != 1 ] && podman image exists "$BASE_IMAGE"; then
        log "base image $BASE_IMAGE is cached"
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        log "debootstrap needs root to make the base image once: run this script with sudo (later runs reuse it)"
        exit 1
    fi
    local mirror rootfs
    mirror="$(debian_mirror)"
    rootfs="$(mktemp -d "$BUILD_DIR/rootfs.XXXXXX")"
    log "debootstrap $SUITE (minbase + $BASE_PACKAGES) from $mirror"
    quietly debootstrap debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" "$mirror" \
        || { rm -rf "$rootfs"; exit 1; }
    # Smaller and closer to the slim image: no apt lists, caches or documentation.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
           "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log
    tar -C "$rootfs" --numeric-owner -c . | podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
}

image_id() { podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

build_service() {
    log "building $CDS_IMAGE from docker/Dockerfile on $BASE_IMAGE"
    local stage_tag="${CDS_IMAGE%%:*}-build-stage:${CDS_IMAGE##*:}" old_stage old_image
    old_stage="$(image_id "$stage_tag")"
    old_image="$(image_id "$CDS_IMAGE")"
    # The build stage gets a tag of its own: it is the layer cache of the next build, and the
    # images it and the service tag leave behind can be removed precisely (no machine-wide prune).
    quietly service-build podman build --format docker --layers --target build \
        --build-arg "PYTHON_IMAGE=$BASE_IMAGE" "${ca_args[@]}" \
        -f "$ROOT/docker/Dockerfile" -t "$stage_tag" "$ROOT"
    quietly service-build podman build --format docker --layers \
        --build-arg "PYTHON_IMAGE=$BASE_IMAGE" "${ca_args[@]}" \
        -f "$ROOT/docker/Dockerfile" -t "$CDS_IMAGE" "$ROOT"
    local old
    for old in "$old_stage" "$old_image"; do
        if [ -n "$old" ] && [ "$old" != "$(image_id "$stage_tag")" ] && [ "$old" != "$(image_id "$CDS_IMAGE")" ]; then
            podman rmi "$old" >/dev/null 2>&1 || true  # still used by a container or another tag: keep
        fi
    done
}

build_standins() {
    local mirror
    mirror="$(debian_mirror)"
    log "building stand-in images $POSTGRES_IMAGE and $NGINX_IMAGE from Debian packages"
    quietly postgres-build podman build --format docker --layers --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "DEBIAN_MIRROR=$mirror" \
        -f "$ROOT/docker/local/postgres.Containerfile" -t "$POSTGRES_IMAGE" "$ROOT/docker/local"
    quietly nginx-build podman build --format docker --layers --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "DEBIAN_MIRROR=$mirror" \
        -f "$ROOT/docker/local/nginx.Containerfile" -t "$NGINX_IMAGE" "$ROOT/docker/local"
}

timed "base image" build_base
timed "service image" build_service
if [ "$compose" = 1 ]; then
    timed "stand-in images" build_standins
fi
log "image $CDS_IMAGE: $(podman image inspect --format '{{.Size}}' "$CDS_IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"

if [ "$run_tests" = 1 ]; then
    python="$ROOT/.venv/bin/python"
    [ -x "$python" ] || { log "no $python: run the README's test command once first (it installs the test extra)"; exit 1; }
    tests=(tests/container/test_image.py)
    [ "$compose" = 1 ] && tests+=(tests/container/test_compose.py)
    cd "$ROOT"
    CDS_CONTAINER_BUILT=1 CDS_IMAGE="$CDS_IMAGE" "$python" -m pytest -q -p no:cacheprovider "${tests[@]}"
fi
