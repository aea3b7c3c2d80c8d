//! A first pass over a YAML configuration with libyaml's own event parser, before the document
//! is built: nesting deeper than [`MAX_DEPTH`] is refused as soon as the parser reaches it, and a
//! key written twice in one map is named by its path and both lines. Not a YAML reader of its
//! own: values are built afterwards by serde_norway, over the same parser.
//!
//! Why a pass of its own: libyaml's scanner does work proportional to the flow nesting depth for
//! every token, and serde_norway reads the whole event stream before its recursion limit applies,
//! so a file of 100,000 `[` took minutes to refuse. Walking the events lazily and stopping at the
//! first one past the limit bounds that work by the limit, whatever the file holds.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use unsafe_libyaml_norway as unsafe_libyaml;

/// The deepest nesting of maps and sequences a configuration may have (a `storage:` block
/// needs five).
pub(crate) const MAX_DEPTH: usize = 64;

/// What the first pass found wrong.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ScanError {
    /// A map or sequence opened deeper than [`MAX_DEPTH`], at this 1-based line and column.
    TooDeep { line: u64, column: u64 },
    /// The key at `path` is written twice in its map, first at `first_line`, again at `line`.
    DuplicateKey {
        path: String,
        first_line: u64,
        line: u64,
    },
}

/// Walks `text`'s events. A syntax error ends the walk without an error of its own: the full
/// parse that follows meets the same error at the same place and reports it.
pub(super) fn scan(text: &str) -> Result<(), ScanError> {
    let mut parser = EventParser::new(text);
    let mut frames: Vec<Frame> = Vec::new();
    while let Some(event) = parser.next() {
        let line = event.line + 1;
        match event.kind {
            EventKind::Start { mapping } => {
                if frames.len() >= MAX_DEPTH {
                    return Err(ScanError::TooDeep {
                        line,
                        column: event.column + 1,
                    });
                }
                // A collection used as a key: its own keys are checked, the key itself is not.
                if let Some(Frame::Map(map)) = frames.last_mut()
                    && map.current.is_none()
                {
                    map.current = Some(("?".into(), false));
                }
                frames.push(if mapping {
                    Frame::Map(MapFrame::default())
                } else {
                    Frame::Seq(0)
                });
            }
            EventKind::End => {
                frames.pop();
                node_done(&mut frames);
            }
            EventKind::Scalar(key) => {
                if let Some(Frame::Map(map)) = frames.last_mut()
                    && map.current.is_none()
                {
                    if let Some(&first_line) = map.seen.get(&key) {
                        let path = path_of(&frames, &key);
                        return Err(ScanError::DuplicateKey {
                            path,
                            first_line,
                            line,
                        });
                    }
                    map.seen.insert(key.clone(), line);
                    map.current = Some((key, true));
                    continue;
                }
                node_done(&mut frames);
            }
            EventKind::Alias => match frames.last_mut() {
                // An alias used as a key: not compared, its value follows.
                Some(Frame::Map(map)) if map.current.is_none() => {
                    map.current = Some(("*".into(), true));
                }
                _ => node_done(&mut frames),
            },
            EventKind::Other => {}
        }
    }
    Ok(())
}

#[derive(Default)]
struct MapFrame {
    /// Keys met so far, with their 1-based line.
    seen: HashMap<String, u64>,
    /// The key whose value comes next (`None`: a key comes next); the flag says it is a scalar.
    current: Option<(String, bool)>,
}

enum Frame {
    /// A sequence and the index of its next item.
    Seq(usize),
    Map(MapFrame),
}

/// A node inside the top frame is complete: a sequence moves to its next item, a map to its
/// next key (after a value) or to the value (after a collection used as a key).
fn node_done(frames: &mut [Frame]) {
    match frames.last_mut() {
        Some(Frame::Seq(index)) => *index += 1,
        Some(Frame::Map(map)) => match &map.current {
            Some((_, true)) | None => map.current = None,
            Some((_, false)) => map.current = Some(("?".into(), true)),
        },
        None => {}
    }
}

/// `storage.database`-style path of `key` inside the innermost of `frames`.
fn path_of(frames: &[Frame], key: &str) -> String {
    let mut path = String::new();
    for frame in &frames[..frames.len() - 1] {
        match frame {
            Frame::Seq(index) => path.push_str(&format!("[{index}]")),
            Frame::Map(map) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(map.current.as_ref().map_or("?", |(k, _)| k));
            }
        }
    }
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
    path
}

struct Event {
    kind: EventKind,
    line: u64,
    column: u64,
}

enum EventKind {
    /// A mapping (`true`) or sequence starts.
    Start { mapping: bool },
    /// A mapping or sequence ends.
    End,
    /// A scalar, with its text.
    Scalar(String),
    /// An alias (`*name`), a complete node.
    Alias,
    /// Anything else: stream and document marks.
    Other,
}

/// libyaml's parser over a borrowed string, yielding events until the stream ends or an error.
struct EventParser<'a> {
    // Boxed: libyaml keeps pointers into the parser structure, which must not move.
    parser: Box<MaybeUninit<unsafe_libyaml::yaml_parser_t>>,
    initialized: bool,
    done: bool,
    _input: &'a str,
}

impl<'a> EventParser<'a> {
    fn new(input: &'a str) -> Self {
        let mut parser = Box::new(MaybeUninit::<unsafe_libyaml::yaml_parser_t>::uninit());
        // SAFETY: `parser` is a heap allocation that outlives every call below (it is dropped only
        // after `yaml_parser_delete`), and `input` is borrowed for the parser's whole life.
        let initialized = unsafe {
            let raw_parser = parser.as_mut_ptr();
            let ok = unsafe_libyaml::yaml_parser_initialize(raw_parser).ok;
            if ok {
                unsafe_libyaml::yaml_parser_set_encoding(
                    raw_parser,
                    unsafe_libyaml::YAML_UTF8_ENCODING,
                );
                unsafe_libyaml::yaml_parser_set_input_string(
                    raw_parser,
                    input.as_ptr(),
                    input.len() as u64,
                );
            }
            ok
        };
        EventParser {
            parser,
            initialized,
            done: !initialized,
            _input: input,
        }
    }

    fn next(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        let mut raw = MaybeUninit::<unsafe_libyaml::yaml_event_t>::uninit();
        // SAFETY: the parser was initialized (else `done` is set); a successful parse fills
        // `raw`, which is read only then and deleted once copied from.
        unsafe {
            let parser = self.parser.as_mut_ptr();
            if unsafe_libyaml::yaml_parser_parse(parser, raw.as_mut_ptr()).fail {
                self.done = true;
                return None;
            }
            let raw = raw.as_mut_ptr();
            let kind = match (*raw).type_ {
                unsafe_libyaml::YAML_MAPPING_START_EVENT => EventKind::Start { mapping: true },
                unsafe_libyaml::YAML_SEQUENCE_START_EVENT => EventKind::Start { mapping: false },
                unsafe_libyaml::YAML_MAPPING_END_EVENT
                | unsafe_libyaml::YAML_SEQUENCE_END_EVENT => EventKind::End,
                unsafe_libyaml::YAML_SCALAR_EVENT => {
                    let scalar = (*raw).data.scalar;
                    let bytes = std::slice::from_raw_parts(scalar.value, scalar.length as usize);
                    EventKind::Scalar(String::from_utf8_lossy(bytes).into_owned())
                }
                unsafe_libyaml::YAML_ALIAS_EVENT => EventKind::Alias,
                unsafe_libyaml::YAML_STREAM_END_EVENT => {
                    self.done = true;
                    EventKind::Other
                }
                _ => EventKind::Other,
            };
            let event = Event {
                kind,
                line: (*raw).start_mark.line,
                column: (*raw).start_mark.column,
            };
            unsafe_libyaml::yaml_event_delete(raw);
            Some(event)
        }
    }
}

impl Drop for EventParser<'_> {
    fn drop(&mut self) {
        if self.initialized {
            // SAFETY: initialized above and deleted exactly once.
            unsafe { unsafe_libyaml::yaml_parser_delete(self.parser.as_mut_ptr()) }
        }
    }
}
