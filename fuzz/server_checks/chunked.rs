//! `fal_server::h1::Chunked` over any bytes, fed whole and in pieces.
//!
//! Properties: no panic; the verdict (where the body ends, what passes on,
//! or that the framing is broken) is the same however the bytes are split
//! as they arrive; what passes is a prefix of what is taken; nothing is
//! taken past the end; and a body it accepts decodes, by a plain reference
//! reading of RFC 9112, to the same bytes as what it passed on.

use fal_server::h1::Chunked;

/// How a scan of all of `data` ended: bytes taken, bytes passed on (as
/// one string), whether the body ended; `None` when refused.
fn scan(data: &[u8], cuts: &[usize]) -> Option<(usize, Vec<u8>, bool)> {
    let mut c = Chunked::default();
    let mut taken = 0;
    let mut passed = Vec::new();
    let mut start = 0;
    let mut pending: Vec<u8> = Vec::new();
    for end in cuts.iter().copied().chain([data.len()]) {
        let end = end.clamp(start, data.len());
        pending.extend_from_slice(&data[start..end]);
        start = end;
        let (take, pass) = c.scan(&pending).ok()?;
        assert!(
            pass <= take && take <= pending.len(),
            "{pass} {take} {}",
            pending.len()
        );
        passed.extend_from_slice(&pending[..pass]);
        pending.drain(..take);
        taken += take;
        if c.done() {
            // Nothing more is taken once the body has ended.
            assert_eq!(c.scan(&pending).ok()?, (0, 0));
            return Some((taken, passed, true));
        }
    }
    Some((taken, passed, false))
}

/// A plain reading of a complete chunked body: its data, and where it ends.
fn reference(body: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut data = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + body[at..].windows(2).position(|w| w == b"\r\n")?;
        let line = &body[at..line_end];
        let size_part = line.split(|&b| b == b';').next()?.trim_ascii_end();
        let size = usize::from_str_radix(std::str::from_utf8(size_part).ok()?, 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers until an empty line.
            loop {
                let end = at + body[at..].windows(2).position(|w| w == b"\r\n")?;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some((data, at));
                }
            }
        }
        data.extend_from_slice(body.get(at..at + size)?);
        at += size;
        if body.get(at..at + 2)? != b"\r\n" {
            return None;
        }
        at += 2;
    }
}

/// The check: the first byte picks where the rest is cut.
pub fn check(data: &[u8]) {
    let Some((&seed, body)) = data.split_first() else {
        return;
    };
    let whole = scan(body, &[]);
    let step = usize::from(seed % 7) + 1;
    let cuts: Vec<usize> = (step..body.len()).step_by(step).collect();
    assert_eq!(
        scan(body, &cuts),
        whole,
        "the verdict depends on how bytes arrive"
    );
    let single: Vec<usize> = (1..body.len()).collect();
    assert_eq!(scan(body, &single), whole, "byte by byte");
    if let Some((taken, passed, true)) = whole {
        // What passed on, plus the closing CRLF the forwarder adds, is a
        // body without trailers that decodes to the same data.
        let (data_in, end) = reference(&body[..taken]).expect("an accepted body decodes");
        assert_eq!(end, taken);
        let mut sent = passed.clone();
        sent.extend_from_slice(b"\r\n");
        let (data_out, sent_end) = reference(&sent).expect("what passes on decodes");
        assert_eq!(sent_end, sent.len());
        assert_eq!(data_in, data_out);
    }
}
