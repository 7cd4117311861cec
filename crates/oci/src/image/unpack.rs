//! Layer unpacking: one layer tar (plain, gzip or zstd) into its own directory, in the form
//! overlayfs reads as a lower dir.
//!
//! Why one directory per layer rather than a flattened root per image: layers are then unpacked
//! once and shared by every image that has them, and a container's root is an overlay mount of
//! the image's layer directories. The OCI whiteouts become overlay whiteouts: `.wh.<name>`
//! becomes a character device 0/0 named `<name>`, and `.wh..wh..opq` in a directory becomes the
//! `trusted.overlay.opaque=y` attribute on it (both need root, which the agent has).
//!
//! The tar comes from a registry and is not trusted. Entries with absolute paths or `..` are
//! refused, as is anything whose parent inside the layer is not a real directory (a symlink
//! planted by an earlier entry could otherwise lead a write outside). Files are created with
//! `O_NOFOLLOW | O_EXCL`, metadata is set without following symlinks, and the image cannot set
//! `trusted.overlay.*` attributes itself.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};
use ruzstd::decoding::FrameDecoder;
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};

use super::digest::HashingReader;
use super::error::IoContext;
use super::manifest::Compression;
use super::{Digest, ImageError};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What unpacking a layer found out about it.
#[derive(Debug)]
pub(crate) struct Unpacked {
    /// Digest of the blob as read (compressed).
    pub blob_digest: Digest,
    /// Digest of the uncompressed tar: the layer's diff id.
    pub diff_id: Digest,
    /// Bytes of file content written.
    pub size: u64,
}

/// Unpacks the layer read from `blob` into `dest` (an empty directory). `layer` names the layer
/// in errors. Both digests are computed over the whole stream, padding included. When
/// unpacking fails and the blob does not hash to `expected_blob`, the mismatch is the error:
/// corrupt content explains a decompressor's or tar reader's complaint.
pub(crate) fn unpack_layer(
    blob: impl Read,
    compression: Compression,
    expected_blob: Option<&Digest>,
    dest: &Path,
    layer: &str,
) -> Result<Unpacked, ImageError> {
    let mut blob = HashingReader::new(blob);
    let tar_error = |e: io::Error| ImageError::invalid(format!("layer {layer}"), e);
    let unpacked = (|| {
        let decompressed: Box<dyn Read + '_> = match compression {
            Compression::None => Box::new(&mut blob),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut blob)),
            Compression::Zstd => Box::new(ZstdReader::new(&mut blob)),
        };
        let mut tar = HashingReader::new(decompressed);
        let mut writer = LayerWriter {
            root: dest,
            layer,
            size: 0,
            dir_times: Vec::new(),
        };
        {
            let mut archive = tar::Archive::new(&mut tar);
            for entry in archive.entries().map_err(tar_error)? {
                writer.entry(entry.map_err(tar_error)?)?;
            }
        }
        writer.finish()?;
        let (diff_id, _) = tar.finish().map_err(tar_error)?;
        Ok((diff_id, writer.size))
    })();
    let blob_digest = blob.finish().map(|(d, _)| d);
    match (unpacked, blob_digest) {
        (Ok((diff_id, size)), Ok(blob_digest)) => Ok(Unpacked {
            blob_digest,
            diff_id,
            size,
        }),
        (Err(e), Ok(actual)) => match expected_blob {
            Some(expected) if *expected != actual => Err(ImageError::DigestMismatch {
                what: format!("layer {layer}"),
                expected: expected.to_string(),
                actual: actual.to_string(),
            }),
            _ => Err(e),
        },
        (Err(e), Err(_)) => Err(e),
        (Ok(_), Err(e)) => Err(tar_error(e)),
    }
}

struct LayerWriter<'a> {
    root: &'a Path,
    layer: &'a str,
    size: u64,
    /// Directory mtimes are set last: creating their entries would change them again.
    dir_times: Vec<(PathBuf, i64)>,
}

/// Metadata of an entry, with PAX records applied over the header fields.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl LayerWriter<'_> {
    fn refuse(&self, path: &Path, reason: &str) -> ImageError {
        ImageError::PathTraversal {
            layer: self.layer.to_owned(),
            path: path.display().to_string(),
            reason: reason.to_owned(),
        }
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), ImageError> {
        let tar_error = |e: io::Error| ImageError::invalid(format!("layer {}", self.layer), e);
        let raw_path = entry.path().map_err(tar_error)?.into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let rel = self.sanitize(&raw_path)?;
        let Some(name) = rel.file_name().map(OsStr::to_owned) else {
            // The layer's own root (`./`): its attributes come from the upper layers' view.
            return Ok(());
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name_bytes = name.as_bytes();

        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            let dir = self.make_parents(parent, &raw_path, true)?;
            if name_bytes == OPAQUE_MARKER.as_bytes() {
                rustix::fs::lsetxattr(&dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .map_err(io::Error::from)
                    .ctx("set opaque attribute on", &dir)?;
            } else if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
                // Other `.wh..wh.` names are AUFS bookkeeping (hard link dirs): meaningless here.
            } else if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(self.refuse(&raw_path, "whiteout of nothing"));
            } else {
                let target = dir.join(OsStr::from_bytes(hidden));
                self.clear(&target, false)?;
                rustix::fs::mknodat(
                    CWD,
                    &target,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(io::Error::from)
                .ctx("create whiteout", &target)?;
            }
            return Ok(());
        }

        let dir = self.make_parents(parent, &raw_path, true)?;
        let full = dir.join(&name);
        let meta = read_meta(&mut entry).map_err(tar_error)?;
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.clear(&full, false)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&full)
                    .ctx("create", &full)?;
                self.size += io::copy(&mut entry, &mut file).ctx("write", &full)?;
            }
            tar::EntryType::Directory => {
                if !self.clear(&full, true)? {
                    fs::create_dir(&full).ctx("create directory", &full)?;
                }
                self.dir_times.push((full.clone(), meta.mtime));
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(tar_error)?
                    .ok_or_else(|| self.refuse(&raw_path, "symlink without target"))?;
                self.clear(&full, false)?;
                // The target is not resolved here: it is only ever followed inside the
                // container's root, by the kernel.
                std::os::unix::fs::symlink(&target, &full).ctx("create symlink", &full)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(tar_error)?
                    .ok_or_else(|| self.refuse(&raw_path, "hard link without target"))?;
                let target_rel = self.sanitize(&target)?;
                let target_dir = self.make_parents(
                    target_rel.parent().unwrap_or(Path::new("")),
                    &target,
                    false,
                )?;
                let source = target_dir.join(
                    target_rel
                        .file_name()
                        .ok_or_else(|| self.refuse(&target, "hard link to the root"))?,
                );
                if source == full {
                    return Ok(());
                }
                self.clear(&full, false)?;
                // linkat without AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
                fs::hard_link(&source, &full).ctx("hard link", &full)?;
                // A hard link shares its inode, whose metadata its first entry set.
                return Ok(());
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (file_type, dev) = match kind {
                    tar::EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let major = entry
                            .header()
                            .device_major()
                            .map_err(tar_error)?
                            .unwrap_or(0);
                        let minor = entry
                            .header()
                            .device_minor()
                            .map_err(tar_error)?
                            .unwrap_or(0);
                        let t = if kind == tar::EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (t, rustix::fs::makedev(major, minor))
                    }
                };
                self.clear(&full, false)?;
                rustix::fs::mknodat(CWD, &full, file_type, Mode::from_raw_mode(0o600), dev)
                    .map_err(io::Error::from)
                    .ctx("create device node", &full)?;
            }
            other => {
                tracing::debug!(layer = self.layer, path = %raw_path.display(), "skipping tar entry of type {other:?}");
                return Ok(());
            }
        }
        self.apply_meta(&full, kind, &meta)
    }

    /// The entry's path relative to the layer root, or an error for anything that could leave it.
    fn sanitize(&self, path: &Path) -> Result<PathBuf, ImageError> {
        let mut out = PathBuf::new();
        for c in path.components() {
            match c {
                Component::Normal(p) => out.push(p),
                Component::CurDir => {}
                Component::ParentDir => return Err(self.refuse(path, "path contains '..'")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(self.refuse(path, "absolute path"));
                }
            }
        }
        Ok(out)
    }

    /// Walks `parent` from the layer root, checking each component is a real directory and
    /// (when `create`) creating missing ones as tar writers may omit them. Returns the full path.
    fn make_parents(&self, parent: &Path, raw: &Path, create: bool) -> Result<PathBuf, ImageError> {
        let mut dir = self.root.to_path_buf();
        for c in parent.components() {
            dir.push(c);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.refuse(raw, "parent is a symlink"));
                }
                Ok(_) => return Err(self.refuse(raw, "parent is not a directory")),
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::create_dir(&dir).ctx("create directory", &dir)?;
                    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                        .ctx("chmod", &dir)?;
                }
                Err(e) => return Err(ImageError::io("stat", &dir, e)),
            }
        }
        Ok(dir)
    }

    /// Makes room for a new entry: a later entry replaces an earlier one, except that a
    /// directory over a directory merges. Returns whether a directory was kept.
    fn clear(&self, path: &Path, keep_dir: bool) -> Result<bool, ImageError> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() && keep_dir => Ok(true),
            Ok(m) if m.is_dir() => fs::remove_dir_all(path).ctx("remove", path).map(|_| false),
            Ok(_) => fs::remove_file(path).ctx("remove", path).map(|_| false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ImageError::io("stat", path, e)),
        }
    }

    fn apply_meta(&self, path: &Path, kind: tar::EntryType, meta: &Meta) -> Result<(), ImageError> {
        let id =
            |v: u64| u32::try_from(v).map_err(|_| self.refuse(path, "uid or gid out of range"));
        // Owner first: chown clears set-id bits and file capabilities, so mode and xattrs follow.
        std::os::unix::fs::lchown(path, Some(id(meta.uid)?), Some(id(meta.gid)?))
            .ctx("chown", path)?;
        if kind != tar::EntryType::Symlink {
            fs::set_permissions(path, fs::Permissions::from_mode(meta.mode & 0o7777))
                .ctx("chmod", path)?;
        }
        for (name, value) in &meta.xattrs {
            if name.starts_with("trusted.overlay.") {
                // Whiteouts and opaque dirs come from the tar's own markers only.
                continue;
            }
            if let Err(e) = rustix::fs::lsetxattr(path, name.as_str(), value, XattrFlags::empty()) {
                // Some filesystems refuse some namespaces; the file is still usable.
                tracing::warn!(layer = self.layer, path = %path.display(), "cannot set xattr {name}: {e}");
            }
        }
        if kind != tar::EntryType::Directory {
            set_mtime(path, meta.mtime)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ImageError> {
        for (dir, mtime) in self.dir_times.iter().rev() {
            set_mtime(dir, *mtime)?;
        }
        Ok(())
    }
}

fn set_mtime(path: &Path, mtime: i64) -> Result<(), ImageError> {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
    .ctx("set times", path)
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let h = entry.header();
    let mut meta = Meta {
        // Like Go's archive/tar (which wrote most layers), an empty numeric field reads as 0.
        mode: h.mode().unwrap_or(0),
        uid: h.uid().unwrap_or(0),
        gid: h.gid().unwrap_or(0),
        mtime: h.mtime().unwrap_or(0) as i64,
        xattrs: Vec::new(),
    };
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            let value = ext.value_bytes();
            let number = || {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.split('.').next()?.parse::<i64>().ok())
            };
            match key {
                "uid" => meta.uid = number().unwrap_or(meta.uid as i64) as u64,
                "gid" => meta.gid = number().unwrap_or(meta.gid as i64) as u64,
                "mtime" => meta.mtime = number().unwrap_or(meta.mtime),
                _ => {
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        meta.xattrs.push((name.to_owned(), value.to_vec()));
                    }
                }
            }
        }
    }
    Ok(meta)
}

/// A zstd stream of any number of frames (skippable frames included), as `zstd:chunked`
/// layers have; ruzstd's own reader stops after the first frame.
struct ZstdReader<R: Read> {
    source: BufReader<R>,
    decoder: FrameDecoder,
    in_frame: bool,
}

impl<R: Read> ZstdReader<R> {
    fn new(source: R) -> Self {
        ZstdReader {
            source: BufReader::new(source),
            decoder: FrameDecoder::new(),
            in_frame: false,
        }
    }
}

impl<R: Read> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                while self.decoder.can_collect() < buf.len() && !self.decoder.is_finished() {
                    let wanted = buf.len() - self.decoder.can_collect();
                    self.decoder
                        .decode_blocks(
                            &mut self.source,
                            ruzstd::decoding::BlockDecodingStrategy::UptoBytes(wanted),
                        )
                        .map_err(io::Error::other)?;
                }
                let n = self.decoder.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                if !self.decoder.is_finished() {
                    continue;
                }
                self.in_frame = false;
            }
            if self.source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.decoder.reset(&mut self.source) {
                Ok(()) => self.in_frame = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    io::copy(
                        &mut (&mut self.source).take(u64::from(length)),
                        &mut io::sink(),
                    )?;
                }
                Err(e) => return Err(io::Error::other(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(path: &str, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(1_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        h
    }

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            if *kind == tar::EntryType::Symlink || *kind == tar::EntryType::Link {
                let mut h = header("x", *kind, 0);
                b.append_link(&mut h, path, std::str::from_utf8(data).unwrap())
                    .unwrap();
            } else {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(*kind);
                h.set_size(data.len() as u64);
                h.set_mode(if *kind == tar::EntryType::Directory {
                    0o755
                } else {
                    0o644
                });
                h.set_mtime(1_000_000);
                b.append_data(&mut h, path, *data).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    fn unpack(
        entries: &[(&str, tar::EntryType, &[u8])],
    ) -> (tempfile::TempDir, Result<Unpacked, ImageError>) {
        let dir = tempfile::tempdir().unwrap();
        let data = tar_of(entries);
        let r = unpack_layer(&data[..], Compression::None, None, dir.path(), "test");
        (dir, r)
    }

    use tar::EntryType as T;

    #[test]
    fn refuses_traversal() {
        // The tar crate's builder refuses to write `..` itself, so craft the headers by hand.
        for path in ["../evil", "a/../../evil", "/etc/evil"] {
            let mut data = Vec::new();
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_entry_type(T::Regular);
            h.set_size(0);
            h.set_mode(0o644);
            h.set_cksum();
            data.extend_from_slice(h.as_bytes());
            data.extend_from_slice(&[0u8; 1024]);
            let dir = tempfile::tempdir().unwrap();
            let r = unpack_layer(&data[..], Compression::None, None, dir.path(), "test");
            assert!(
                matches!(r, Err(ImageError::PathTraversal { .. })),
                "{path}: {r:?}"
            );
        }
        // A symlink to outside, then a write through it.
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().to_str().unwrap().as_bytes().to_vec();
        let (dir, r) = unpack(&[
            ("link", T::Symlink, &target),
            ("link/file", T::Regular, b"x"),
        ]);
        assert!(matches!(r, Err(ImageError::PathTraversal { .. })), "{r:?}");
        assert!(!outside.path().join("file").exists());
        assert!(
            fs::symlink_metadata(dir.path().join("link"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // A file written over an existing symlink replaces the symlink, never writes through it.
        let (dir, r) = unpack(&[
            ("l", T::Symlink, b"/etc/hostname"),
            ("l", T::Regular, b"mine"),
        ]);
        r.unwrap();
        assert_eq!(fs::read(dir.path().join("l")).unwrap(), b"mine");
        // A hard link whose target path goes through a symlink.
        let (_dir, r) = unpack(&[("s", T::Symlink, b"/etc"), ("h", T::Link, b"s/passwd")]);
        assert!(matches!(r, Err(ImageError::PathTraversal { .. })), "{r:?}");
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        let (dir, r) = unpack(&[
            ("etc/", T::Directory, b""),
            ("etc/.wh.motd", T::Regular, b""),
            ("var/cache/.wh..wh..opq", T::Regular, b""),
            ("var/cache/new", T::Regular, b"n"),
            ("bin/sh", T::Regular, b"#!"),
            ("bin/ash", T::Link, b"bin/sh"),
        ]);
        let u = r.unwrap();
        assert_eq!(u.size, 3);
        let root = dir.path();
        let motd = fs::symlink_metadata(root.join("etc/motd")).unwrap();
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        assert!(motd.file_type().is_char_device());
        assert_eq!(motd.rdev(), 0);
        assert!(!root.join("etc/.wh.motd").exists());
        let mut buf = [0u8; 8];
        let n = rustix::fs::lgetxattr(root.join("var/cache"), OPAQUE_XATTR, &mut buf[..]).unwrap();
        assert_eq!(&buf[..n], b"y");
        assert_eq!(fs::read(root.join("var/cache/new")).unwrap(), b"n");
        assert_eq!(
            fs::metadata(root.join("bin/ash")).unwrap().ino(),
            fs::metadata(root.join("bin/sh")).unwrap().ino()
        );
        assert_eq!(fs::metadata(root.join("etc")).unwrap().mtime(), 1_000_000);
    }

    #[test]
    fn zstd_layers_of_several_frames() {
        use ruzstd::encoding::{CompressionLevel, compress_to_vec};
        let tar = tar_of(&[
            ("a", T::Regular, b"first"),
            ("dir/b", T::Regular, &[7u8; 70_000]),
        ]);
        let (head, tail) = tar.split_at(1536);
        // Two frames with a skippable frame between them, as zstd:chunked writes.
        let mut blob = compress_to_vec(head, CompressionLevel::Fastest);
        blob.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
        blob.extend_from_slice(&3u32.to_le_bytes());
        blob.extend_from_slice(b"skp");
        blob.extend_from_slice(&compress_to_vec(tail, CompressionLevel::Fastest));
        let dir = tempfile::tempdir().unwrap();
        let u = unpack_layer(&blob[..], Compression::Zstd, None, dir.path(), "zstd").unwrap();
        assert_eq!(u.diff_id, Digest::of(&tar));
        assert_eq!(u.blob_digest, Digest::of(&blob));
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"first");
        assert_eq!(fs::read(dir.path().join("dir/b")).unwrap().len(), 70_000);
    }
}
