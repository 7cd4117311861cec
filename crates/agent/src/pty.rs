//! An exec session's pseudo-terminal master as tokio I/O. The runtime layer hands out a blocking
//! `File`; the streaming endpoint needs a reader and a writer it can poll from one task each,
//! without parking a blocking-pool thread on a terminal that may stay silent for hours.

use std::fs::File;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::unix::pipe;

/// The terminal's output side.
#[derive(Debug)]
pub struct PtyReader(pipe::Receiver);

/// The terminal's input side. Shutting it down does nothing: a terminal has no half-close (the
/// end of input is the EOF character, which the client types itself).
pub type PtyWriter = pipe::Sender;

/// Makes `master` non-blocking and registers a reader and a writer on it with the reactor (must
/// run inside a runtime). tokio's pipe types poll any non-blocking descriptor, and taking the
/// `File` keeps this free of unsafe descriptor handling.
pub fn split(master: File) -> io::Result<(PtyReader, PtyWriter)> {
    // The two descriptors share one open file description, so one flag change covers both.
    let flags = fcntl(&master, FcntlArg::F_GETFL)?;
    fcntl(
        &master,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )?;
    let input = master.try_clone()?;
    Ok((
        PtyReader(pipe::Receiver::from_file_unchecked(master)?),
        pipe::Sender::from_file_unchecked(input)?,
    ))
}

impl AsyncRead for PtyReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.0).poll_read(cx, buf)) {
            // EIO once the last slave end is closed: the terminal's end of file.
            Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => Poll::Ready(Ok(())),
            other => Poll::Ready(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_terminal_echoes_and_ends_with_its_last_user() {
        use std::os::fd::OwnedFd;
        let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).unwrap();
        nix::pty::grantpt(&master).unwrap();
        nix::pty::unlockpt(&master).unwrap();
        let slave_path = nix::pty::ptsname_r(&master).unwrap();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&slave_path)
            .unwrap();
        let master = File::from(OwnedFd::from(master));
        let (mut reader, mut writer) = split(master).unwrap();
        // The line discipline echoes what is typed.
        writer.write_all(b"hi\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = reader.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"hi"), "{:?}", &buf[..n]);
        drop(slave);
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
    }
}
