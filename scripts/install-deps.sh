#!/usr/bin/env bash
# Installs the Debian packages bosun needs, when they are missing.
# With "test": also what only the tests need (a container registry, nft,
# conntrack, Prometheus, sshd, etcdctl, gpg, Chromium).
# With "bench": also what only the benchmarks need (nginx, which the ingress
# load test measures bosun's ingress proxy against; make bench).
set -euo pipefail
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || need+=(containernetworking-plugins)
command -v git >/dev/null || need+=(git)
command -v dig >/dev/null || need+=(dnsutils)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
if [ "${1:-}" = test ]; then
  command -v docker-registry >/dev/null || need+=(docker-registry)
  # The Service proxy programs nftables over netlink; tests read the kernel's
  # rules and connection tracking back with these.
  command -v nft >/dev/null || need+=(nftables)
  command -v conntrack >/dev/null || need+=(conntrack)
  # Canary metric gates are tested against a real Prometheus.
  command -v prometheus >/dev/null || need+=(prometheus)
  # Git over ssh is tested against OpenSSH's sshd (ssh-keygen and
  # ssh-keyscan come with it, in openssh-client).
  [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  # Tests read etcd with etcdctl: Secret values are encrypted there.
  command -v etcdctl >/dev/null || need+=(etcd-client)
  # Signed commits are made with gpg (and ssh-keygen) in the tests.
  command -v gpg >/dev/null || need+=(gnupg)
  command -v gpgconf >/dev/null || need+=(gpgconf)
  # The web dashboard is tested (and its screenshots taken) in headless
  # Chromium, driven by chromedp.
  command -v chromium >/dev/null || need+=(chromium)
fi
if [ "${1:-}" = bench ]; then
  # The ingress load test (ingress/bench_test.go) starts its own nginx as a
  # child process on loopback; the package's own service is not used.
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "bosun needs these Debian packages: ${need[*]} (run as root to install them)" >&2
  exit 1
fi
echo "installing: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
