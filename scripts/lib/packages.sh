# Shared by scripts/up and scripts/test: install Debian packages that are missing (as root).
# Building needs protoc and the well-known .proto files (the etcd-client crate compiles its gRPC
# definitions); the tests also run real etcd servers, the pod network tests real network
# namespaces (iproute2, ping, python3 for TCP listeners inside them), the runtime tests runc and
# crun with busybox-static, and the image tests a registry (docker-registry), images built with
# umoci, pushed with skopeo, and htpasswd (apache2-utils) for registry auth. The tests' in-container
# checker (bins/maestro-checker) is linked statically against glibc's archives from libc6-dev.
# A node (the agent `maestro server` embeds) runs containers with runc (or crun), sets up pod
# networks with iproute2 and util-linux's nsenter, and programs its service proxy with nftables.
# The network tests reach node ports from outside the nodes with curl. The n-tier example's test
# drives headless Chromium (with a font, so its screenshot shows text).
BUILD_PACKAGES=(protobuf-compiler libprotobuf-dev libc6-dev)
NODE_PACKAGES=(runc crun iproute2 util-linux nftables)
TEST_PACKAGES=(etcd-server etcd-client iproute2 iputils-ping python3 runc crun busybox-static
  docker-registry umoci skopeo apache2-utils nftables curl chromium fonts-dejavu-core)

install_packages() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}
