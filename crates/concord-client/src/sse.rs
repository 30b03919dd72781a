//! A small incremental parser for Server-Sent Events (the `text/event-stream` format).
//!
//! Watches arrive as SSE; the network hands them over in arbitrary chunks, so
//! the parser is fed bytes as they come and yields each event once its
//! terminating blank line has been seen. It follows the WHATWG "interpreting an
//! event stream" rules: `\n`, `\r\n` and `\r` line endings (also split across
//! chunks), `:` comment lines, `field: value` with one optional space stripped,
//! multi-line `data`, a persistent last event id, and a leading BOM ignored.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The last event id seen on the stream (ids persist across events, per the spec).
    pub id: Option<String>,
    /// The `event:` field, or `message` when the event had none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental SSE parser: feed chunks with [`SseParser::push`], collect events.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line being read (bytes, so a UTF-8 sequence may span chunks).
    line: Vec<u8>,
    /// The previous chunk ended in `\r`; a `\n` starting this one belongs to it.
    after_cr: bool,
    /// The first line was completed (the BOM check happens on it).
    first_line_done: bool,
    /// `data` buffer of the event being built, each line followed by `\n`.
    data: String,
    /// `event` buffer of the event being built.
    event: String,
    /// Last event id buffer; survives dispatch.
    last_id: Option<String>,
    /// Reconnection time the server asked for, in milliseconds.
    retry_ms: Option<u64>,
}

const BOM: &[u8] = "\u{feff}".as_bytes();

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk of the stream; returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let mut rest = chunk;
        if rest.is_empty() {
            return events;
        }
        if std::mem::take(&mut self.after_cr) && rest[0] == b'\n' {
            rest = &rest[1..];
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..pos]);
            let terminator = rest[pos];
            rest = &rest[pos + 1..];
            if terminator == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            if let Some(event) = self.finish_line() {
                events.push(event);
            }
        }
        self.line.extend_from_slice(rest);
        events
    }

    /// The reconnection delay (`retry:` field) the server last sent, in milliseconds.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// The last event id seen, to resume from after a reconnect.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Interprets the completed line in `self.line`; returns an event on a blank line.
    fn finish_line(&mut self) -> Option<SseEvent> {
        let mut bytes = std::mem::take(&mut self.line);
        if !self.first_line_done {
            self.first_line_done = true;
            if bytes.starts_with(BOM) {
                bytes.drain(..BOM.len());
            }
        }
        let line = String::from_utf8_lossy(&bytes);
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (&*line, ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => self.event = value.to_owned(),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok();
            }
            _ => {}
        }
        None
    }

    /// Ends the event being built; an event without data is dropped, as the spec says.
    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        if self.data.is_empty() {
            return None;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the trailing '\n'
        Some(SseEvent {
            id: self.last_id.clone(),
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: Option<&str>, event: &str, data: &str) -> SseEvent {
        SseEvent {
            id: id.map(str::to_owned),
            event: event.to_owned(),
            data: data.to_owned(),
        }
    }

    fn parse_all(input: &[u8]) -> Vec<SseEvent> {
        SseParser::new().push(input)
    }

    /// Feeds `input` split at every pair of positions and checks the result never changes.
    fn assert_split_invariant(input: &[u8]) {
        let whole = parse_all(input);
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let mut p = SseParser::new();
                let mut got = p.push(&input[..i]);
                got.extend(p.push(&input[i..j]));
                got.extend(p.push(&input[j..]));
                assert_eq!(got, whole, "split at {i},{j}");
            }
        }
        // One byte at a time, too.
        let mut p = SseParser::new();
        let got: Vec<_> = input.iter().flat_map(|b| p.push(&[*b])).collect();
        assert_eq!(got, whole, "byte by byte");
    }

    #[test]
    fn parses_the_concord_watch_shape() {
        let input = b"id: 5\nevent: put\ndata: {\"revision\":5}\n\nid: 6\nevent: progress\ndata: {\"revision\":6}\n\n";
        assert_eq!(
            parse_all(input),
            vec![
                ev(Some("5"), "put", "{\"revision\":5}"),
                ev(Some("6"), "progress", "{\"revision\":6}"),
            ]
        );
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let input = b"data: first\ndata:second\ndata\ndata:  two spaces\n\n";
        assert_eq!(
            parse_all(input),
            vec![ev(None, "message", "first\nsecond\n\n two spaces")]
        );
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        let input = b": keep-alive\n:\nfoo: bar\ndata: x\n: inside\n\n: trailing\n\n";
        assert_eq!(parse_all(input), vec![ev(None, "message", "x")]);
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        let input = b"event: put\nid: 3\n\ndata: y\n\n";
        // The event type resets at the blank line, the id persists.
        assert_eq!(parse_all(input), vec![ev(Some("3"), "message", "y")]);
    }

    #[test]
    fn empty_data_line_still_dispatches() {
        assert_eq!(parse_all(b"data\n\n"), vec![ev(None, "message", "")]);
        assert_eq!(parse_all(b"data:\n\n"), vec![ev(None, "message", "")]);
    }

    #[test]
    fn ids_persist_and_reject_nul() {
        let input = b"id: 1\ndata: a\n\ndata: b\n\nid: x\0y\ndata: c\n\nid\ndata: d\n\n";
        assert_eq!(
            parse_all(input),
            vec![
                ev(Some("1"), "message", "a"),
                ev(Some("1"), "message", "b"),
                ev(Some("1"), "message", "c"),
                ev(Some(""), "message", "d"),
            ]
        );
    }

    #[test]
    fn retry_only_accepts_digits() {
        let mut p = SseParser::new();
        p.push(b"retry: 1500\n");
        assert_eq!(p.retry_ms(), Some(1500));
        p.push(b"retry: 15x\nretry:\n");
        assert_eq!(p.retry_ms(), Some(1500));
    }

    #[test]
    fn incomplete_event_is_not_dispatched() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: a\n").is_empty());
        assert!(p.push(b"data: b").is_empty());
        assert_eq!(p.push(b"\n\n"), vec![ev(None, "message", "a\nb")]);
    }

    #[test]
    fn all_line_endings() {
        let input = b"data: a\r\ndata: b\rdata: c\n\r\nevent: e\rdata: d\r\r";
        assert_eq!(
            parse_all(input),
            vec![ev(None, "message", "a\nb\nc"), ev(None, "e", "d")]
        );
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_ending() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: a\r").is_empty());
        // Had the '\n' been taken as a second line ending, this would dispatch.
        assert!(p.push(b"\n").is_empty());
        assert_eq!(p.push(b"\r\n"), vec![ev(None, "message", "a")]);
    }

    #[test]
    fn leading_bom_is_ignored_once() {
        let mut input = BOM.to_vec();
        input.extend_from_slice(b"data: a\n\n");
        assert_eq!(parse_all(&input), vec![ev(None, "message", "a")]);

        // Only at the very start: a BOM later makes an unknown field name.
        let mut input = b"data: a\n\n".to_vec();
        input.extend_from_slice(BOM);
        input.extend_from_slice(b"data: b\n\n");
        assert_eq!(parse_all(&input), vec![ev(None, "message", "a")]);
        assert_split_invariant(&input);
    }

    #[test]
    fn utf8_split_inside_a_code_point() {
        let input = "id: 9\nevent: put\ndata: {\"key\":\"ключ/😀\"}\n\n".as_bytes();
        assert_eq!(
            parse_all(input),
            vec![ev(Some("9"), "put", "{\"key\":\"ключ/😀\"}")]
        );
        assert_split_invariant(input);
    }

    #[test]
    fn any_chunk_split_gives_the_same_events() {
        let input: &[u8] = b": hello\r\nretry: 100\nid: 1\nevent: put\ndata: {\"a\":1}\ndata: x\r\n\r\nid: 2\revent: delete\rdata\r\r:c\n\nevent: progress\ndata: {\"revision\":2}\n\ndata: tail-without-end";
        let events = parse_all(input);
        assert_eq!(
            events,
            vec![
                ev(Some("1"), "put", "{\"a\":1}\nx"),
                ev(Some("2"), "delete", ""),
                ev(Some("2"), "progress", "{\"revision\":2}"),
            ]
        );
        assert_split_invariant(input);
    }
}
