//! The CRI container log format the kubelet and the container runtime share: each line is
//! `<RFC 3339 nanosecond timestamp> <stdout|stderr> <F|P> <text>`, where `P` marks a partial line
//! (longer than one entry, continued in the next). The shim writes container output this way;
//! the agent reads it back for `kubectl logs`.

use std::io::{self, Write};

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
}
