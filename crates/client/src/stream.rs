//! A model's server-sent events (`POST /run/{owner}/{name}/stream`), read
//! as they arrive.

use crate::ClientError;

/// The events of a streaming call, in order, each read off the connection
/// when it arrives (nothing waits for the end of the stream).
pub struct EventStream {
    response: reqwest::Response,
    parser: EventParser,
    /// The gateway's `x-fal-request-id`.
    pub request_id: Option<String>,
}

impl EventStream {
    pub(crate) fn new(response: reqwest::Response) -> Result<EventStream, ClientError> {
        let header = |h: &str| {
            response
                .headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        if !content_type.starts_with("text/event-stream") {
            return Err(ClientError::Decode(format!(
                "the app answered {content_type:?}, not a stream of events (text/event-stream)"
            )));
        }
        Ok(EventStream {
            request_id: header("x-fal-request-id"),
            response,
            parser: EventParser::default(),
        })
    }

    /// The next event's data (its `data:` lines joined by newlines), or
    /// `None` once the stream has ended.
    pub async fn next_event(&mut self) -> Result<Option<String>, ClientError> {
        loop {
            if let Some(data) = self.parser.next_event() {
                return Ok(Some(data));
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.parser.feed(&chunk),
                // An event not closed by a blank line is dropped, as the
                // format says.
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(ClientError::Decode(format!(
                        "the stream broke off: {}",
                        e.without_url()
                    )));
                }
            }
        }
    }
}

/// The `text/event-stream` format, fed in pieces: lines end with LF, CR or
/// CRLF; `data:` lines accumulate; a blank line ends an event; comments
/// (`:`…) and other fields (`event`, `id`, `retry`) are skipped.
#[derive(Default)]
pub(crate) struct EventParser {
    /// Bytes not yet ending in a line break.
    pending: Vec<u8>,
    /// The `data` lines of the event being read.
    data: Option<String>,
    /// Events complete and not yet handed out.
    ready: std::collections::VecDeque<String>,
    /// The last byte fed was a CR (a LF right after it is the same break).
    after_cr: bool,
}

impl EventParser {
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        if self.after_cr && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        self.after_cr = false;
        while let Some(i) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.pending.extend_from_slice(&bytes[..i]);
            let line = std::mem::take(&mut self.pending);
            self.line(&String::from_utf8_lossy(&line));
            let crlf = bytes[i] == b'\r';
            bytes = &bytes[i + 1..];
            if crlf {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
        }
        self.pending.extend_from_slice(bytes);
    }

    fn line(&mut self, line: &str) {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                self.ready.push_back(data);
            }
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
    }

    pub(crate) fn next_event(&mut self) -> Option<String> {
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::EventParser;

    fn events(pieces: &[&[u8]]) -> Vec<String> {
        let mut p = EventParser::default();
        let mut out = Vec::new();
        for piece in pieces {
            p.feed(piece);
            while let Some(e) = p.next_event() {
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let text: &[u8] =
            b": keep-alive\n\ndata: {\"a\":1}\n\nevent: x\nid: 7\ndata: two\ndata: lines\n\n";
        let want = ["{\"a\":1}", "two\nlines"];
        assert_eq!(events(&[text]), want);
        for cut in 0..text.len() {
            assert_eq!(events(&[&text[..cut], &text[cut..]]), want, "cut at {cut}");
        }
    }

    #[test]
    fn cr_and_crlf_end_lines_too() {
        assert_eq!(events(&[b"data: a\r\n\r\ndata:b\r\rdata: c\n"]), ["a", "b"]);
        assert_eq!(events(&[b"data: a\r", b"\n", b"\r\n"]), ["a"]);
    }

    #[test]
    fn an_unfinished_event_is_not_one() {
        assert!(events(&[b"data: half"]).is_empty());
    }
}
