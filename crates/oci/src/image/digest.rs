//! Content digests (`sha256:<hex>`) and a reader that hashes what passes through it, so content
//! is verified while it streams instead of being read twice.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use super::ImageError;

/// A `sha256:<64 lowercase hex>` digest. Other algorithms are refused: every registry and tool
/// we talk to uses sha256, and one algorithm keeps the store's file names simple.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<hex>`.
    pub fn parse(s: &str) -> Result<Digest, ImageError> {
        let invalid = |reason: &str| ImageError::invalid("digest", format!("{s:?}: {reason}"));
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(invalid("expected <algorithm>:<hex>"));
        };
        if algorithm != "sha256" {
            return Err(invalid("only sha256 digests are supported"));
        }
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid("expected 64 lowercase hex digits"));
        }
        Ok(Digest(s.to_owned()))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(hasher: Sha256) -> Digest {
        let hash = hasher.finalize();
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in hash {
            s.push_str(&format!("{b:02x}"));
        }
        Digest(s)
    }

    /// The hex part, used as a file name.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    /// The whole `sha256:<hex>` text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks that `actual` is this digest; `what` names the content in the error.
    pub(crate) fn verify(&self, actual: &Digest, what: &str) -> Result<(), ImageError> {
        if self == actual {
            Ok(())
        } else {
            Err(ImageError::DigestMismatch {
                what: what.to_owned(),
                expected: self.0.clone(),
                actual: actual.0.clone(),
            })
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl TryFrom<String> for Digest {
    type Error = ImageError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Digest::parse(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

/// Hashes and counts every byte read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads what is left (trailing padding a decoder did not need), then returns the digest of
    /// everything and the byte count.
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_hasher(self.hasher), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_hash() {
        let d = Digest::of(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
        assert!(Digest::parse("sha512:abcd").is_err());
        assert!(Digest::parse("sha256:E3B0").is_err());
        let mut r = HashingReader::new(&b"abc"[..]);
        let mut first = [0u8; 1];
        r.read_exact(&mut first).unwrap();
        let (d, n) = r.finish().unwrap();
        assert_eq!(n, 3);
        assert_eq!(d, Digest::of(b"abc"));
    }
}
