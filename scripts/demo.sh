#!/usr/bin/env bash
# make demo: run bosun on the bundled example repository, on this machine.
#   - starts containerd if no daemon answers on $CONTAINERD_ADDRESS
#   - imports the example images (no registry needed)
#   - makes a local Git repository from examples/hello, with examples/lifecycle
#     and examples/batch beside it (in $DEMO_DIR/repo)
#   - runs `bosun server` with an embedded etcd in $DEMO_DIR/data
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR=${DEMO_DIR:-/tmp/bosun-demo}
CONTAINERD_ADDRESS=${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock}
BOSUN=$PWD/bin/bosun
mkdir -p "$DEMO_DIR"

if ! ctr --address "$CONTAINERD_ADDRESS" version >/dev/null 2>&1; then
  echo "demo: starting containerd (log: $DEMO_DIR/containerd.log)"
  mkdir -p "$(dirname "$CONTAINERD_ADDRESS")"
  cat > "$DEMO_DIR/containerd.toml" <<TOML
version = 2
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CONTAINERD_ADDRESS"
TOML
  nohup containerd --config "$DEMO_DIR/containerd.toml" >"$DEMO_DIR/containerd.log" 2>&1 &
  for _ in $(seq 50); do
    ctr --address "$CONTAINERD_ADDRESS" version >/dev/null 2>&1 && break
    sleep 0.2
  done
fi

"$BOSUN" image import --containerd-address "$CONTAINERD_ADDRESS" build/images/bosun-hello-v1.tar build/images/bosun-hello-v2.tar

repo=$DEMO_DIR/repo
if [ ! -d "$repo/.git" ]; then
  mkdir -p "$repo"
  cp -r examples/hello/. "$repo/"
  mkdir -p "$repo/lifecycle" "$repo/batch"
  cp examples/lifecycle/*.yaml "$repo/lifecycle/"
  cp examples/batch/*.yaml "$repo/batch/"
  git -C "$repo" init -q -b main
  git -C "$repo" add -A
  git -C "$repo" -c user.name=demo -c user.email=demo@bosun.local commit -qm "hello: web deployment, service and a sidecar pod; init containers, sidecars and hooks; jobs and a cronjob"
fi

cat <<TXT

  bosun is starting. In another terminal:

    $BOSUN status
    $BOSUN get pods -o wide
    dig @127.0.0.1 -p 5353 +short web.default.svc.cluster.local
    curl http://\$(dig @127.0.0.1 -p 5353 +short web.default.svc.cluster.local | head -1):8080/

  The dashboard (live; the token logs the browser in and leaves the address bar):

    https://127.0.0.1:7070/?token=\$(cat ~/.config/bosun/token)
    $BOSUN get pods -w              # or follow the cluster from the terminal
    $BOSUN describe deployment web  # with its recent events

  Then change the repository and watch the cluster follow within seconds:

    cd $repo
    sed -i 's/replicas: 3/replicas: 5/' web/deployment.yaml && git commit -qam "scale web to 5"
    git rm -q web/service.yaml && git commit -qm "drop the web service"
    echo 'kind: Nope' > broken.yaml && git add broken.yaml && git commit -qm "break it"   # rejected, see: bosun status
    git revert --no-edit HEAD                                                             # and back
    $BOSUN history
    $BOSUN logs sidecar-demo -c app -f

  Init containers, sidecars and hooks (lifecycle/), Jobs and a CronJob (batch/):

    $BOSUN get pods                 # init-demo shows Init:0/2, Init:1/2, then Running
    $BOSUN get jobs
    $BOSUN get cronjobs             # tick runs every minute
    $BOSUN logs job/pi

  Preview a branch before merging it (exit 0: no change, 2: changes, 1: error):

    git checkout -qb v2 && sed -i 's/bosun-hello:v1/bosun-hello:v2/' web/deployment.yaml && git commit -qam v2 && git checkout -q main
    $BOSUN plan --ref v2

  Stop with Ctrl-C (the pods keep running; the next start adopts them).

TXT
exec "$BOSUN" server --repo "$repo" --data-dir "$DEMO_DIR/data" --poll 1s \
  --containerd-address "$CONTAINERD_ADDRESS" "$@"
