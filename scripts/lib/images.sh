# Shared by scripts/demo-registry and examples/ntier/build-images: build a one-layer OCI image
# with umoci from a root filesystem the caller fills, and push it with skopeo. Needs the Debian
# packages umoci, skopeo and busybox-static.
#
#   image_start WORK          a new image in WORK; its root filesystem is WORK/bundle/rootfs
#   add_busybox ROOT          /bin/busybox, its applets (where no file is), root and nobody
#   image_finish WORK DEST [umoci config flags...]   repack, configure, push to docker://DEST

image_start() {
  local work=$1
  umoci init --layout "$work/layout"
  umoci new --image "$work/layout:1"
  umoci unpack --image "$work/layout:1" "$work/bundle" >/dev/null
}

add_busybox() {
  local root=$1 applet
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  [ -e "$root/etc/passwd" ] ||
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  [ -e "$root/etc/group" ] || printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
}

image_finish() {
  local work=$1 dest=$2
  shift 2
  umoci repack --image "$work/layout:1" "$work/bundle" >/dev/null
  umoci config --image "$work/layout:1" "$@" >/dev/null
  skopeo copy -q --dest-tls-verify=false "oci:$work/layout:1" "docker://$dest"
}
