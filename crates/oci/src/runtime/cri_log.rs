//! The CRI container log format the kubelet and the container runtime share: each line is
//! `<RFC 3339 nanosecond timestamp> <stdout|stderr> <F|P> <text>`, where `P` marks a partial line
//! (longer than one entry, continued in the next). The shim writes container output this way
//! ([`RotatingLog`], which also rotates the file like the kubelet's `containerLogMaxSize` /
//! `containerLogMaxFiles`); the agent reads it back for `kubectl logs`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Which stream a log entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Longest text in one entry; longer lines are split into partial entries.
pub const MAX_ENTRY_BYTES: usize = 16 * 1024;

/// Write `data` (a chunk of a stream) as CRI entries. `pending` holds an unterminated line
/// between calls; `flush_partial` writes it out as a partial entry (at the end of the stream).
pub fn write_entries(
    out: &mut impl Write,
    stream: Stream,
    now: jiff::Timestamp,
    pending: &mut Vec<u8>,
    data: &[u8],
) -> io::Result<()> {
    pending.extend_from_slice(data);
    let stamp = now.strftime("%Y-%m-%dT%H:%M:%S%.9fZ").to_string();
    loop {
        if let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = &line[..line.len() - 1];
            for (i, chunk) in text.chunks(MAX_ENTRY_BYTES).enumerate() {
                let last = (i + 1) * MAX_ENTRY_BYTES >= text.len();
                write_entry(out, &stamp, stream, !last, chunk)?;
            }
            if text.is_empty() {
                write_entry(out, &stamp, stream, false, b"")?;
            }
        } else if pending.len() >= MAX_ENTRY_BYTES {
            let chunk: Vec<u8> = pending.drain(..MAX_ENTRY_BYTES).collect();
            write_entry(out, &stamp, stream, true, &chunk)?;
        } else {
            return Ok(());
        }
    }
}

/// Write what is left of an unterminated line when the stream ends.
pub fn flush_partial(
    out: &mut impl Write,
    stream: Stream,
    now: jiff::Timestamp,
    pending: &mut Vec<u8>,
) -> io::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let stamp = now.strftime("%Y-%m-%dT%H:%M:%S%.9fZ").to_string();
    let text = std::mem::take(pending);
    write_entry(out, &stamp, stream, true, &text)
}

fn write_entry(
    out: &mut impl Write,
    stamp: &str,
    stream: Stream,
    partial: bool,
    text: &[u8],
) -> io::Result<()> {
    write!(
        out,
        "{stamp} {} {} ",
        stream.as_str(),
        if partial { "P" } else { "F" }
    )?;
    out.write_all(text)?;
    out.write_all(b"\n")
}

/// The kubelet's defaults: `containerLogMaxSize: 10Mi`, `containerLogMaxFiles: 5`.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 20;
pub const DEFAULT_MAX_FILES: u32 = 5;

/// When a container's log file is rotated, as the kubelet's `containerLogMaxSize` and
/// `containerLogMaxFiles` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The most bytes one file holds (an entry is never split across files, so a file may
    /// only exceed it when a single entry is larger).
    pub max_size: u64,
    /// Files per container, the one being written included (at least 2): up to
    /// `max_files - 1` rotated files are kept.
    pub max_files: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_size: DEFAULT_MAX_SIZE,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

/// The kubelet's suffix for rotated logs (Go layout `20060102-150405`): `0.log.20240101-120000`.
const ROTATED_TIME_FORMAT: &str = "%Y%m%d-%H%M%S";

/// The name a log rotated at `now` gets: `<path>.<YYYYMMDD-HHMMSS>` in UTC (the kubelet uses
/// local time; UTC keeps names in time order across DST changes). Further rotations within
/// the same second add `.1`, `.2`, ...: always past the highest one there, even when older
/// ones of that second were deleted, so names keep sorting in rotation order.
pub fn rotated_name(path: &Path, now: jiff::Timestamp) -> io::Result<PathBuf> {
    Ok(next_rotated_name(path, now, &rotated_files(path)?))
}

fn next_rotated_name(path: &Path, now: jiff::Timestamp, existing: &[PathBuf]) -> PathBuf {
    let time = now.strftime(ROTATED_TIME_FORMAT).to_string();
    let base = format!("{}.{time}", path.display());
    let prefix = format!(
        "{}.",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    let highest = existing
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            rotation_key(name.strip_prefix(&prefix)?)
        })
        .filter(|(t, _)| *t == time)
        .map(|(_, n)| n)
        .max();
    match highest {
        None => PathBuf::from(base),
        Some(n) => PathBuf::from(format!("{base}.{}", n + 1)),
    }
}

/// The rotated files of the log at `path`, oldest first: `<path>.<time>[.<n>][.gz]` (the
/// `.gz` of a log compressed by someone else counts too; `.tmp` files do not).
pub fn rotated_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.");
    let mut found: Vec<((String, u64), PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(suffix) = file_name.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        if let Some(key) = rotation_key(suffix) {
            found.push((key, entry.path()));
        }
    }
    // By time, then by the same-second counter (numerically: `.10` after `.9`).
    found.sort();
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

/// `20240101-120000`, `20240101-120000.3`, `20240101-120000.gz` → (time, counter).
fn rotation_key(suffix: &str) -> Option<(String, u64)> {
    let suffix = suffix.strip_suffix(".gz").unwrap_or(suffix);
    let (time, counter) = match suffix.split_once('.') {
        Some((time, n)) => (time, n.parse().ok()?),
        None => (suffix, 0),
    };
    let ok = time.len() == 15
        && time.bytes().enumerate().all(|(i, b)| {
            if i == 8 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    ok.then(|| (time.to_owned(), counter))
}

/// A CRI log file that rotates itself: before a write would take it past `max_size` it is
/// renamed to [`rotated_name`], the oldest rotated files beyond `max_files - 1` are deleted,
/// and a new file is started. Writes are whole entries, so every file holds complete lines.
///
/// The kubelet rotates from outside every 10 s and asks the runtime to reopen the file; here
/// the one writer (the shim) rotates in line, so nothing is lost or interleaved, the bound is
/// exact, and it keeps working while the agent is down.
#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Option<Rotation>,
    /// After a failed rotation, the size at which to try again (not at every write).
    retry_at: u64,
}

impl RotatingLog {
    /// Opens (appending, created 0640 if missing) the log at `path`; `None` never rotates.
    pub fn open(path: impl Into<PathBuf>, rotation: Option<Rotation>) -> io::Result<Self> {
        let path = path.into();
        if let Some(r) = rotation
            && (r.max_files < 2 || r.max_size == 0)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("log rotation needs max_files >= 2 and max_size > 0, got {r:?}"),
            ));
        }
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingLog {
            path,
            file,
            size,
            rotation,
            retry_at: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the current file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends `entries` (complete CRI lines, as [`write_entries`] makes them), rotating
    /// between lines when the next ones would not fit. A failed rotation is returned after
    /// the data was written to the current file anyway: logs are not dropped for it.
    pub fn write(&mut self, entries: &[u8], now: jiff::Timestamp) -> io::Result<()> {
        let Some(rotation) = self.rotation else {
            return self.append(entries);
        };
        let mut rest = entries;
        let mut rotate_error = None;
        while !rest.is_empty() {
            let room = rotation.max_size.saturating_sub(self.size);
            let fits = fitting_prefix(rest, room);
            if fits > 0 {
                self.append(&rest[..fits])?;
                rest = &rest[fits..];
                continue;
            }
            // The next line does not fit: start a new file, unless this one is empty (a line
            // longer than max_size gets a file of its own) or rotation failed recently.
            if self.size > 0 && self.size >= self.retry_at {
                match self.rotate(rotation, now) {
                    Ok(()) => continue,
                    Err(e) => {
                        self.retry_at = self.size + rotation.max_size;
                        rotate_error = Some(e);
                    }
                }
            }
            let line = rest
                .iter()
                .position(|b| *b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            self.append(&rest[..line])?;
            rest = &rest[line..];
        }
        rotate_error.map_or(Ok(()), Err)
    }

    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.size += data.len() as u64;
        Ok(())
    }

    /// Deletes the oldest rotated files so that, with the one made now, `max_files - 1`
    /// remain (oldest first, so a reader of a newer one is not cut off), renames the current
    /// file and starts a new one.
    fn rotate(&mut self, rotation: Rotation, now: jiff::Timestamp) -> io::Result<()> {
        let rotated = rotated_files(&self.path)?;
        let keep = rotation.max_files.saturating_sub(2) as usize;
        for old in &rotated[..rotated.len().saturating_sub(keep)] {
            match fs::remove_file(old) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let target = next_rotated_name(&self.path, now, &rotated);
        fs::rename(&self.path, &target)?;
        match open_append(&self.path) {
            Ok(file) => {
                self.file = file;
                self.size = 0;
                self.retry_at = 0;
                Ok(())
            }
            Err(e) => {
                // Put the old file back so writing goes on where the agent looks for it.
                let _ = fs::rename(&target, &self.path);
                Err(e)
            }
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// How many bytes of whole lines at the start of `data` fit in `room`.
fn fitting_prefix(data: &[u8], room: u64) -> usize {
    let limit = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
    data[..limit]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn lines_become_entries() {
        let mut file = Vec::new();
        let mut pending = Vec::new();
        write_entries(
            &mut file,
            Stream::Stdout,
            at("2026-01-01T00:00:01Z"),
            &mut pending,
            b"hello\nwor",
        )
        .unwrap();
        write_entries(
            &mut file,
            Stream::Stdout,
            at("2026-01-01T00:00:02Z"),
            &mut pending,
            b"ld\n\n",
        )
        .unwrap();
        flush_partial(
            &mut file,
            Stream::Stdout,
            at("2026-01-01T00:00:03Z"),
            &mut b"tail".to_vec(),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(file).unwrap(),
            "2026-01-01T00:00:01.000000000Z stdout F hello\n2026-01-01T00:00:02.000000000Z stdout F world\n2026-01-01T00:00:02.000000000Z stdout F \n2026-01-01T00:00:03.000000000Z stdout P tail\n"
        );
    }

    #[test]
    fn long_lines_are_split() {
        let mut data = vec![b'x'; MAX_ENTRY_BYTES + 10];
        data.push(b'\n');
        let mut file = Vec::new();
        write_entries(
            &mut file,
            Stream::Stderr,
            at("2026-01-01T00:00:01Z"),
            &mut Vec::new(),
            &data,
        )
        .unwrap();
        let lines: Vec<&[u8]> = file
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(b"2026-01-01T00:00:01.000000000Z stderr P "));
        assert!(lines[1].starts_with(b"2026-01-01T00:00:01.000000000Z stderr F "));
    }

    fn entries(n: usize, text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let data: String = (0..n).map(|i| format!("{text}-{i}\n")).collect();
        write_entries(
            &mut out,
            Stream::Stdout,
            at("2026-01-01T00:00:01Z"),
            &mut Vec::new(),
            data.as_bytes(),
        )
        .unwrap();
        out
    }

    fn names(paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    /// Every line of every file is a whole entry.
    fn assert_complete(path: &Path) -> Vec<String> {
        let text = fs::read_to_string(path).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
        text.lines()
            .map(|line| {
                let parts: Vec<&str> = line.splitn(4, ' ').collect();
                assert_eq!(parts.len(), 4, "{line:?}");
                assert!(parts[0].parse::<jiff::Timestamp>().is_ok(), "{line:?}");
                assert_eq!((parts[1], parts[2]), ("stdout", "F"), "{line:?}");
                parts[3].to_owned()
            })
            .collect()
    }

    #[test]
    fn rotates_before_the_limit_and_keeps_max_files_minus_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let rotation = Rotation {
            max_size: 300,
            max_files: 3,
        };
        let mut log = RotatingLog::open(&path, Some(rotation)).unwrap();
        // Each entry is 45 bytes (31-byte timestamp, "stdout F ", "rN-I\n"): 6 per file.
        assert_eq!(entries(1, "r0").len(), 45);
        let mut written = Vec::new();
        let start: jiff::Timestamp = "2024-01-01T12:00:00Z".parse().unwrap();
        for round in 0..10 {
            let now = start + jiff::SignedDuration::from_secs(round);
            let chunk = entries(4, &format!("r{round}"));
            written.extend(
                String::from_utf8(chunk.clone())
                    .unwrap()
                    .lines()
                    .map(|l| l.splitn(4, ' ').nth(3).unwrap().to_owned()),
            );
            log.write(&chunk, now).unwrap();
            assert!(log.size() <= 300, "round {round}: {}", log.size());
        }
        let rotated = rotated_files(&path).unwrap();
        assert_eq!(rotated.len(), 2, "{:?}", names(&rotated));
        // Kubelet-style names, oldest first; the newest rotation happened at round 9's time.
        let rotated_names = names(&rotated);
        assert!(rotated_names[0] < rotated_names[1]);
        assert_eq!(rotated_names[1], "0.log.20240101-120009");
        // What is kept is the most recent output, in order, in whole lines.
        let mut kept = Vec::new();
        for file in rotated.iter().chain([&path]) {
            let lines = assert_complete(file);
            assert!(fs::metadata(file).unwrap().len() <= 300);
            kept.extend(lines);
        }
        assert_eq!(kept[..], written[written.len() - kept.len()..]);
        assert!(kept.len() >= 2 * 6, "{kept:?}");
    }

    #[test]
    fn same_second_rotations_get_counters_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.log");
        let mut log = RotatingLog::open(
            &path,
            Some(Rotation {
                max_size: 120,
                max_files: 20,
            }),
        )
        .unwrap();
        let now = at("2024-01-01T12:00:00Z");
        for _ in 0..12 {
            log.write(&entries(2, "same-second"), now).unwrap();
        }
        let rotated = names(&rotated_files(&path).unwrap());
        assert_eq!(rotated.len(), 11, "{rotated:?}");
        assert_eq!(rotated[0], "1.log.20240101-120000");
        assert_eq!(rotated[1], "1.log.20240101-120000.1");
        assert_eq!(
            rotated[10], "1.log.20240101-120000.10",
            "numeric, not text, order"
        );
        // Unrelated files next to it are neither listed nor deleted.
        for other in [
            "1.log.tmp",
            "1.log.20240101-120000.tmp",
            "11.log.20240101-120000",
        ] {
            fs::write(dir.path().join(other), "x").unwrap();
        }
        fs::write(dir.path().join("1.log.20230101-000000.gz"), "old").unwrap();
        let listed = names(&rotated_files(&path).unwrap());
        assert_eq!(listed.len(), 12);
        assert_eq!(listed[0], "1.log.20230101-000000.gz");
    }

    #[test]
    fn same_second_rotations_with_deletions_stay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = RotatingLog::open(
            &path,
            Some(Rotation {
                max_size: 100,
                max_files: 3,
            }),
        )
        .unwrap();
        let now = at("2024-01-01T12:00:00Z");
        for i in 0..20 {
            log.write(&entries(1, &format!("n{i:02}")), now).unwrap();
        }
        // Two entries (46 bytes each) per file; the first names of the second were deleted,
        // yet new ones sort after the survivors.
        let rotated = rotated_files(&path).unwrap();
        assert_eq!(
            names(&rotated),
            ["0.log.20240101-120000.7", "0.log.20240101-120000.8"]
        );
        let kept: Vec<String> = rotated
            .iter()
            .chain([&path])
            .flat_map(|f| assert_complete(f))
            .collect();
        assert_eq!(kept, ["n14-0", "n15-0", "n16-0", "n17-0", "n18-0", "n19-0"]);
    }

    #[test]
    fn an_existing_file_counts_and_long_lines_get_a_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        fs::write(&path, entries(3, "before-restart")).unwrap();
        let rotation = Rotation {
            max_size: 200,
            max_files: 2,
        };
        let mut log = RotatingLog::open(&path, Some(rotation)).unwrap();
        assert!(log.size() > 100);
        log.write(&entries(2, "after"), at("2024-01-01T00:00:01Z"))
            .unwrap();
        let rotated = rotated_files(&path).unwrap();
        assert_eq!(rotated.len(), 1);
        assert_eq!(assert_complete(&rotated[0]).len(), 3);
        // One entry longer than max_size: written whole, into a file of its own.
        let long = entries(1, &"x".repeat(500));
        log.write(&long, at("2024-01-01T00:00:02Z")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), long);
        // max_files 2: only the newest rotated file stays.
        let rotated = rotated_files(&path).unwrap();
        assert_eq!(names(&rotated), ["0.log.20240101-000002"]);
        assert_eq!(assert_complete(&rotated[0]), ["after-0", "after-1"]);
    }

    #[test]
    fn without_a_policy_nothing_rotates_and_bad_policies_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = RotatingLog::open(&path, None).unwrap();
        for _ in 0..100 {
            log.write(&entries(10, "line"), at("2024-01-01T00:00:00Z"))
                .unwrap();
        }
        assert!(rotated_files(&path).unwrap().is_empty());
        assert_eq!(assert_complete(&path).len(), 1000);
        for bad in [
            Rotation {
                max_size: 100,
                max_files: 1,
            },
            Rotation {
                max_size: 0,
                max_files: 5,
            },
        ] {
            assert!(RotatingLog::open(&path, Some(bad)).is_err());
        }
        assert_eq!(
            rotated_name(&dir.path().join("9.log"), at("2024-01-01T12:00:00Z")).unwrap(),
            dir.path().join("9.log.20240101-120000")
        );
    }
}
