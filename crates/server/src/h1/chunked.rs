//! Chunked framing (RFC 9112 section 7.1), followed over bytes as they
//! arrive by the hand-written forwarding path in both directions: to find
//! where a body ends, to refuse framing looser than the RFC, and to leave
//! trailers out.
//!
//! Pure: no I/O.

/// Framing that breaks RFC 9112's chunked rules: the body's end cannot be
/// trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the chunked framing is broken")]
pub struct BadChunk;

/// Follows chunked framing over bytes as they arrive, to find where the
/// body ends (the bytes themselves pass on unchanged, but for trailers,
/// which are left out). Strict, as RFC 9112 has it: sizes in hex, then
/// only whitespace before a `;`, extensions without control bytes, lines
/// ended by CRLF; anything else is an error, so that the two ends of the
/// proxy cannot disagree on where a body stops.
#[derive(Debug, Default)]
pub struct Chunked {
    /// Where in the framing the next byte falls.
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// In a chunk-size line: the size so far, and whether a digit was seen.
    #[default]
    SizeStart,
    /// Hex digits of a size.
    Size(u64),
    /// Whitespace after the size: only a `;` may follow.
    SizeWs(u64),
    /// After the size: extensions, up to CR.
    Extension(u64),
    /// Expecting LF after a size line.
    SizeLf(u64),
    /// Inside chunk data: bytes left.
    Data(u64),
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// Expecting LF after a trailer line.
    TrailerLf,
    /// Expecting the last LF.
    EndLf,
    /// The body has ended.
    Done,
}

impl Chunked {
    /// Reads framing from `data`; returns how many of its bytes belong to
    /// the body (all, unless the body ends inside `data`), and how many of
    /// those to pass on: the trailer section is not. Once [`Self::done`],
    /// the caller ends the body with the CRLF that closes it.
    pub fn scan(&mut self, data: &[u8]) -> Result<(usize, usize), BadChunk> {
        use ChunkState::*;
        let in_trailers = matches!(
            self.state,
            TrailerStart | Trailer | TrailerLf | EndLf | Done
        );
        let mut pass = in_trailers.then_some(0);
        let mut i = 0;
        while i < data.len() {
            if self.state == Done {
                break;
            }
            if let Data(left) = self.state {
                let take = usize::try_from(left).map_or(data.len() - i, |l| l.min(data.len() - i));
                i += take;
                let left = left - take as u64;
                self.state = if left == 0 { DataCr } else { Data(left) };
                continue;
            }
            let b = data[i];
            i += 1;
            self.state = match (self.state, b) {
                (SizeStart, _) => Size(u64::from(hex(b).ok_or(BadChunk)?)),
                (Size(n), b'\r') => SizeLf(n),
                (Size(n), b';') | (SizeWs(n), b';') => Extension(n),
                (Size(n), b' ' | b'\t') | (SizeWs(n), b' ' | b'\t') => SizeWs(n),
                (SizeWs(_), _) => return Err(BadChunk),
                (Size(n), _) => {
                    let d = hex(b).ok_or(BadChunk)?;
                    if n > u64::MAX >> 4 {
                        return Err(BadChunk);
                    }
                    Size(n << 4 | u64::from(d))
                }
                (Extension(n), b'\r') => SizeLf(n),
                // Visible ASCII, space, tab and obs-text; no other control.
                (Extension(n), b'\t' | b' '..=b'~' | 0x80..) => Extension(n),
                (Extension(_), _) => return Err(BadChunk),
                (SizeLf(0), b'\n') => {
                    pass = Some(i);
                    TrailerStart
                }
                (SizeLf(n), b'\n') => Data(n),
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => SizeStart,
                (TrailerStart, b'\r') => EndLf,
                (TrailerStart | Trailer, b'\n') => return Err(BadChunk),
                (Trailer, b'\r') => TrailerLf,
                (TrailerStart | Trailer, _) => Trailer,
                (TrailerLf, b'\n') => TrailerStart,
                (EndLf, b'\n') => Done,
                _ => return Err(BadChunk),
            };
        }
        Ok((i, pass.unwrap_or(i)))
    }

    /// Whether the body has ended.
    pub fn done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

/// The value of a hex digit.
fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(parts: &[&[u8]]) -> Result<(usize, bool), BadChunk> {
        let mut c = Chunked::default();
        let mut total = 0;
        for p in parts {
            total += c.scan(p)?.0;
        }
        Ok((total, c.done()))
    }

    /// What passes on of a body given in `parts`.
    fn passed(parts: &[&[u8]]) -> Vec<u8> {
        let mut c = Chunked::default();
        let mut out = Vec::new();
        for p in parts {
            let (_, pass) = c.scan(p).unwrap();
            out.extend_from_slice(&p[..pass]);
        }
        assert!(c.done());
        out.extend_from_slice(b"\r\n");
        out
    }

    #[test]
    fn chunked_trailers_are_left_out() {
        let body: &[u8] = b"5\r\nhello\r\n0;e=1\r\nx-a: 1\r\nx-b: 2\r\n\r\n";
        let want = b"5\r\nhello\r\n0;e=1\r\n\r\n";
        assert_eq!(passed(&[body]), want);
        assert_eq!(passed(&body.chunks(1).collect::<Vec<_>>()), want);
        assert_eq!(passed(&[b"0\r\n\r\n"]), b"0\r\n\r\n");
    }

    #[test]
    fn chunked_framing_finds_the_end_across_reads() {
        let body = b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nx-trailer: 1\r\n\r\nGET / HTTP/1.1";
        let end = body.len() - b"GET / HTTP/1.1".len();
        assert_eq!(scan_all(&[body]), Ok((end, true)));
        // Byte by byte gives the same answer.
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        let mut c = Chunked::default();
        let mut used = 0;
        for b in bytes {
            used += c.scan(b).unwrap().0;
            if c.done() {
                break;
            }
        }
        assert_eq!(used, end);
        assert_eq!(
            scan_all(&[b"a\r\n0123", b"456789\r\n0\r\n\r\n"]),
            Ok((20, true))
        );
        assert_eq!(scan_all(&[b"3\r\nab"]), Ok((5, false)));
    }

    #[test]
    fn chunked_framing_is_strict() {
        for bad in [
            &b"5\nhello\r\n"[..],
            b"x\r\n",
            b"\r\n",
            b"3\r\nabcX",
            b"0\r\nbad\n",
            b"fffffffffffffffff\r\n",
            b"5 xyz\r\n",
            b"5 3\r\n",
            b"5 \r\n",
            b"5;a\0\r\n",
            b"5;a\x01\r\n",
            b"5;a\x7f\r\n",
            b"5;a\nb\r\n",
        ] {
            assert_eq!(
                scan_all(&[bad]),
                Err(BadChunk),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
