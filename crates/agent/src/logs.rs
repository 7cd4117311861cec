//! Reading container logs: one CRI-format file per container start (written by the shim, see
//! `maestro_oci::runtime::cri_log`), rendered as `kubectl logs` asks: `tailLines`,
//! `sinceSeconds`/`sinceTime`, `timestamps`, `limitBytes`; `follow` is the server's.

use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt};

pub use maestro_oci::runtime::cri_log::{MAX_ENTRY_BYTES, Stream, flush_partial, write_entries};

/// One parsed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time: jiff::Timestamp,
    pub raw_time: String,
    pub stream: Stream,
    pub partial: bool,
    pub text: Vec<u8>,
}

/// Parse one CRI log line (without its newline).
pub fn parse_line(line: &[u8]) -> Option<Entry> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let raw_time = std::str::from_utf8(parts.next()?).ok()?.to_string();
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    let text = parts.next().unwrap_or_default().to_vec();
    Some(Entry {
        time: raw_time.parse().ok()?,
        raw_time,
        stream,
        partial,
        text,
    })
}

/// What `kubectl logs` asked for.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub tail_lines: Option<usize>,
    pub since: Option<jiff::Timestamp>,
    pub timestamps: bool,
    pub limit_bytes: Option<usize>,
}

/// Render the entries of a CRI log as the user sees them: whole lines (partials joined),
/// filtered by `since`, the last `tail_lines`, prefixed with timestamps if asked, cut at
/// `limit_bytes`.
pub fn render(reader: impl BufRead, opts: &LogOptions) -> Vec<u8> {
    let mut lines: Vec<(String, Vec<u8>)> = Vec::new();
    let mut current: Option<(String, Vec<u8>)> = None;
    for raw in reader.split(b'\n').map_while(Result::ok) {
        let Some(entry) = parse_line(&raw) else {
            continue;
        };
        if opts.since.is_some_and(|since| entry.time < since) {
            continue;
        }
        let (_, text) = current.get_or_insert_with(|| (entry.raw_time.clone(), Vec::new()));
        text.extend_from_slice(&entry.text);
        if !entry.partial {
            lines.push(current.take().expect("just set"));
        }
    }
    if let Some(rest) = current {
        lines.push(rest);
    }
    if let Some(tail) = opts.tail_lines {
        let skip = lines.len().saturating_sub(tail);
        lines.drain(..skip);
    }
    let mut out = Vec::new();
    for (time, text) in lines {
        if opts.timestamps {
            out.extend_from_slice(time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&text);
        out.push(b'\n');
    }
    if let Some(limit) = opts.limit_bytes {
        out.truncate(limit);
    }
    out
}

/// How often a followed log is checked for new entries.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Follows the log at `path` from byte `offset`: sends each new whole line, rendered, to `send`
/// until `send` refuses (the client left) or nothing is left to read and `running()` says the
/// container stopped. Survives rotation as the kubelet does: when `path` names a new file (the
/// shim renamed the old one away), the rest of the old file is sent, then the new one from its
/// start; a file truncated in place is read again from its start.
pub async fn follow<F, Fut>(
    path: PathBuf,
    offset: u64,
    timestamps: bool,
    running: impl Fn() -> bool,
    mut send: F,
) where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let opts = LogOptions {
        timestamps,
        ..Default::default()
    };
    let mut file: Option<tokio::fs::File> = None;
    let mut position = offset;
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let mut chunk = std::mem::take(&mut partial);
        let before = chunk.len();
        if file.is_none() {
            file = open_at(&path, position).await;
        }
        if let Some(f) = file.as_mut() {
            let len = f.metadata().await.map(|m| m.len()).unwrap_or(position);
            if len < position {
                // Truncated in place: start over.
                position = 0;
                let _ = f.seek(std::io::SeekFrom::Start(0)).await;
            }
            if let Ok(n) = f.read_to_end(&mut chunk).await {
                position += n as u64;
            }
            let open_inode = f.metadata().await.ok().map(|m| m.ino());
            let path_inode = tokio::fs::metadata(&path).await.ok().map(|m| m.ino());
            if path_inode.is_some() && path_inode != open_inode {
                // Rotated: the old file is read to its end above; go on with the new one.
                file = open_at(&path, 0).await;
                position = 0;
                if let Some(f) = file.as_mut()
                    && let Ok(n) = f.read_to_end(&mut chunk).await
                {
                    position = n as u64;
                }
            }
        }
        let got_new = chunk.len() > before;
        // Only whole lines are rendered; the rest waits for its newline.
        let cut = chunk.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        partial = chunk.split_off(cut);
        let out = render(&chunk[..], &opts);
        if !out.is_empty() && !send(out).await {
            return;
        }
        if !got_new && !running() {
            return;
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

async fn open_at(path: &std::path::Path, position: u64) -> Option<tokio::fs::File> {
    let mut file = tokio::fs::File::open(path).await.ok()?;
    file.seek(std::io::SeekFrom::Start(position)).await.ok()?;
    Some(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn lines_become_entries_and_back() {
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
        write_entries(
            &mut file,
            Stream::Stderr,
            at("2026-01-01T00:00:03Z"),
            &mut Vec::new(),
            b"oops\n",
        )
        .unwrap();
        let text = String::from_utf8(file.clone()).unwrap();
        assert_eq!(
            text,
            "2026-01-01T00:00:01.000000000Z stdout F hello\n2026-01-01T00:00:02.000000000Z stdout F world\n2026-01-01T00:00:02.000000000Z stdout F \n2026-01-01T00:00:03.000000000Z stderr F oops\n"
        );
        let all = render(&file[..], &LogOptions::default());
        assert_eq!(all, b"hello\nworld\n\noops\n");
        let tail = render(
            &file[..],
            &LogOptions {
                tail_lines: Some(1),
                timestamps: true,
                ..Default::default()
            },
        );
        assert_eq!(tail, b"2026-01-01T00:00:03.000000000Z oops\n");
        let since = render(
            &file[..],
            &LogOptions {
                since: Some(at("2026-01-01T00:00:02Z")),
                ..Default::default()
            },
        );
        assert_eq!(since, b"world\n\noops\n");
        let limited = render(
            &file[..],
            &LogOptions {
                limit_bytes: Some(3),
                ..Default::default()
            },
        );
        assert_eq!(limited, b"hel");
    }

    #[test]
    fn long_lines_are_split_into_partials_and_joined() {
        let long = vec![b'x'; MAX_ENTRY_BYTES + 10];
        let mut data = long.clone();
        data.push(b'\n');
        let mut file = Vec::new();
        write_entries(
            &mut file,
            Stream::Stdout,
            at("2026-01-01T00:00:01Z"),
            &mut Vec::new(),
            &data,
        )
        .unwrap();
        let entries: Vec<Entry> = file
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| parse_line(l).unwrap())
            .collect();
        assert_eq!(entries.len(), 2);
        assert!(entries[0].partial && !entries[1].partial);
        let mut expected = long;
        expected.push(b'\n');
        assert_eq!(render(&file[..], &LogOptions::default()), expected);
    }

    #[tokio::test]
    async fn follow_goes_on_across_rotation_and_ends_with_the_container() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let line = |n: usize| format!("2026-01-01T00:00:0{n}.000000000Z stdout F line {n}\n");
        std::fs::write(&path, line(1)).unwrap();
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let follower = tokio::spawn(follow(
            path.clone(),
            line(1).len() as u64,
            false,
            {
                let running = running.clone();
                move || running.load(std::sync::atomic::Ordering::SeqCst)
            },
            move |out| {
                let tx = tx.clone();
                async move { tx.send(out).is_ok() }
            },
        ));
        let append = |text: &str| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(text.as_bytes()).unwrap();
        };
        append(&line(2));
        assert_eq!(rx.recv().await.unwrap(), b"line 2\n");
        // A line cut in two arrives whole once its end is written.
        let third = line(3);
        append(&third[..20]);
        tokio::time::sleep(FOLLOW_POLL * 3).await;
        append(&third[20..]);
        assert_eq!(rx.recv().await.unwrap(), b"line 3\n");
        // Rotation: a last line lands in the old file after the rename, then the new file.
        std::fs::rename(&path, dir.path().join("0.log.20260101-000000")).unwrap();
        {
            use std::io::Write;
            let mut old = std::fs::OpenOptions::new()
                .append(true)
                .open(dir.path().join("0.log.20260101-000000"))
                .unwrap();
            old.write_all(line(4).as_bytes()).unwrap();
        }
        std::fs::write(&path, line(5)).unwrap();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let out = rx.recv().await.unwrap();
            seen.extend(String::from_utf8(out).unwrap().lines().map(str::to_string));
        }
        assert_eq!(seen, ["line 4", "line 5"]);
        // The container stops: the follower ends.
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .expect("the follower ended")
            .unwrap();
    }
}
