//! Reading container logs: one CRI-format file per container start (written by the shim, see
//! `maestro_oci::runtime::cri_log`), rendered as `kubectl logs` asks: `tailLines`,
//! `sinceSeconds`/`sinceTime`, `timestamps`, `limitBytes`; `follow` is the server's.

use std::io::BufRead;

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
}
