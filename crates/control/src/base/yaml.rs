//! YAML (and JSON, its subset) from users, bounded before the parser sees it: world files,
//! and the files the CLI reads (worker pool YAML for `replace`, policy and role files).
//!
//! The parser bounds recursion itself (128 levels), but reads a document's whole event stream
//! first, and deeply nested collections (`[[[[…`, or thousands of indentation levels) make
//! that slow; so nesting and size are checked up front.

use serde::de::DeserializeOwned;

/// The largest YAML document read.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// The deepest nesting of flow collections (`[`, `{`) accepted: the parser's own limit.
pub const MAX_NESTING: usize = 128;

/// Parse `text` as YAML into `T`; the error says what is wrong (a bound or the parser's
/// message, with its line and column).
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    if text.len() > MAX_BYTES {
        return Err(format!(
            "the document is {} bytes; at most {MAX_BYTES} are read",
            text.len()
        ));
    }
    let mut depth = 0usize;
    for (line, l) in text.lines().enumerate() {
        // Block collections nest by indentation: two columns a level, as YAML is written.
        if l.len() - l.trim_start_matches(' ').len() > 2 * MAX_NESTING {
            return Err(format!(
                "line {}: indented deeper than {} columns",
                line + 1,
                2 * MAX_NESTING
            ));
        }
        for c in l.chars() {
            match c {
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Err(format!(
                            "line {}: collections nest deeper than {MAX_NESTING} levels",
                            line + 1
                        ));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
}
