//! IAM Conditions: the CEL subset Google accepts in allow bindings, compiled once and evaluated
//! with `cel-interpreter`.
//!
//! Attributes: `request.time` (timestamp; `getHours('Europe/Berlin')` and friends come from the
//! interpreter), `resource.name`, `resource.type`, `resource.service`. Google's
//! `resource.name.extract('/x/{name}/')` is registered here as a custom function, and so are
//! the tag functions `resource.matchTag('ORG_ID/KEY', 'VALUE')`,
//! `resource.matchTagId('tagKeys/ID', 'tagValues/ID')`, `resource.hasTagKey('ORG_ID/KEY')`
//! and `resource.hasTagKeyId('tagKeys/ID')`, over the resource's effective tags.

pub mod tags;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cel_interpreter::extractors::{Arguments, This};
use cel_interpreter::{Context, ExecutionError, Program, Value};
use chrono::{DateTime, Datelike, FixedOffset, Timelike};

use crate::error::PolicyError;

/// A compiled condition expression. `Send + Sync`: the parsed AST is plain data.
#[derive(Debug)]
pub struct Condition {
    program: Program,
    expression: String,
}

/// What a condition may look at.
#[derive(Clone, Copy, Debug)]
pub struct ConditionContext<'a> {
    pub request_time: DateTime<chrono::Utc>,
    pub resource_name: &'a str,
    pub resource_type: &'a str,
    pub resource_service: &'a str,
    /// The resource's effective tags (its own and those it inherits).
    pub tags: &'a [Tag],
}

/// One effective tag of a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    /// `tagKeys/123`
    pub key_id: String,
    /// Every namespaced name the key answers to (`ORG_ID/env`; a project's key by id and by
    /// number).
    pub key_names: Vec<String>,
    /// `tagValues/456`
    pub value_id: String,
    /// `dev`
    pub value_short_name: String,
}

/// Hidden entries of the `resource` map the tag functions read: one string per thing a call
/// may ask for, so each function is a membership test. (A NUL cannot be written in a CEL
/// identifier, so no expression reaches them by name.)
const TAG_PAIRS: &str = "\0tag-pairs";
const TAG_ID_PAIRS: &str = "\0tag-id-pairs";
const TAG_KEYS: &str = "\0tag-keys";
const TAG_KEY_IDS: &str = "\0tag-key-ids";

fn tag_list(this: &Value, entry: &str, wanted: String) -> bool {
    let Value::Map(m) = this else { return false };
    match m.map.get(&cel_interpreter::objects::Key::String(Arc::new(
        entry.to_string(),
    ))) {
        Some(Value::List(items)) => items
            .iter()
            .any(|i| matches!(i, Value::String(s) if **s == wanted)),
        _ => false,
    }
}

fn match_tag(This(this): This<Value>, key: Arc<String>, value: Arc<String>) -> bool {
    tag_list(&this, TAG_PAIRS, format!("{key}\u{1}{value}"))
}
fn match_tag_id(This(this): This<Value>, key: Arc<String>, value: Arc<String>) -> bool {
    tag_list(&this, TAG_ID_PAIRS, format!("{key}\u{1}{value}"))
}
fn has_tag_key(This(this): This<Value>, key: Arc<String>) -> bool {
    tag_list(&this, TAG_KEYS, key.to_string())
}
fn has_tag_key_id(This(this): This<Value>, key: Arc<String>) -> bool {
    tag_list(&this, TAG_KEY_IDS, key.to_string())
}

fn strings(items: impl Iterator<Item = String>) -> Value {
    Value::List(Arc::new(
        items.map(|s| Value::String(Arc::new(s))).collect(),
    ))
}

/// Google's `extract(template)`: `template` is `PREFIX{var}SUFFIX`; returns the text after the
/// first occurrence of PREFIX up to the next SUFFIX (or the end when SUFFIX is empty), or `""`
/// when the name does not match — Google documents the empty string as "no match", not an error.
fn extract(This(this): This<Arc<String>>, template: Arc<String>) -> String {
    let (Some(open), Some(close)) = (template.find('{'), template.find('}')) else {
        return String::new();
    };
    if close < open {
        return String::new();
    }
    let (prefix, suffix) = (&template[..open], &template[close + 1..]);
    let Some(start) = this.find(prefix) else {
        return String::new();
    };
    let rest = &this[start + prefix.len()..];
    if suffix.is_empty() {
        return rest.to_string();
    }
    match rest.find(suffix) {
        Some(end) => rest[..end].to_string(),
        None => String::new(),
    }
}

/// A timestamp seen in the time zone named by the optional argument of `getHours(tz)` and
/// friends: an IANA name (`Europe/Berlin`), `UTC`, or a fixed offset (`+05:30`). Without an
/// argument, UTC, as CEL specifies. cel-interpreter's own getters ignore the argument, which
/// would silently answer in UTC, so we register these instead.
fn in_zone(
    ts: &DateTime<FixedOffset>,
    args: &[Value],
) -> Result<chrono::NaiveDateTime, ExecutionError> {
    let utc = ts.naive_utc();
    let tz = match args.first() {
        None => return Ok(utc),
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(ExecutionError::function_error(
                "getHours",
                format!("time zone must be a string, got {other:?}"),
            ));
        }
    };
    if let Ok(z) = tz.parse::<chrono_tz::Tz>() {
        return Ok(ts.with_timezone(&z).naive_local());
    }
    if let Some(off) = fixed_offset(tz) {
        return Ok(ts.with_timezone(&off).naive_local());
    }
    Err(ExecutionError::function_error(
        "getHours",
        format!("unknown time zone '{tz}'"),
    ))
}

/// `+HH:MM` / `-HH:MM`.
fn fixed_offset(tz: &str) -> Option<FixedOffset> {
    let sign = match tz.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = tz[1..].split_once(':')?;
    let (h, m) = (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?);
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

macro_rules! zoned_getter {
    ($fname:ident, |$d:ident| $body:expr) => {
        fn $fname(
            This(this): This<DateTime<FixedOffset>>,
            Arguments(args): Arguments,
        ) -> Result<Value, ExecutionError> {
            let $d = in_zone(&this, &args)?;
            Ok(Value::Int(($body) as i64))
        }
    };
}

zoned_getter!(get_full_year, |d| d.year());
zoned_getter!(get_month, |d| d.month0());
zoned_getter!(get_day_of_year, |d| d.ordinal0());
zoned_getter!(get_day_of_month, |d| d.day0());
zoned_getter!(get_date, |d| d.day());
zoned_getter!(get_day_of_week, |d| d.weekday().num_days_from_sunday());
zoned_getter!(get_hours, |d| d.hour());
zoned_getter!(get_minutes, |d| d.minute());
zoned_getter!(get_seconds, |d| d.second());

/// The root context with the built-in functions plus `extract`, built once: constructing the
/// default function registry costs dozens of allocations, too much to repeat per evaluation.
fn base_context() -> &'static Context<'static> {
    static BASE: OnceLock<Context<'static>> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut c = Context::default();
        c.add_function("extract", extract);
        c.add_function("getFullYear", get_full_year);
        c.add_function("getMonth", get_month);
        c.add_function("getDayOfYear", get_day_of_year);
        c.add_function("getDayOfMonth", get_day_of_month);
        c.add_function("getDate", get_date);
        c.add_function("getDayOfWeek", get_day_of_week);
        c.add_function("getHours", get_hours);
        c.add_function("getMinutes", get_minutes);
        c.add_function("getSeconds", get_seconds);
        c.add_function("matchTag", match_tag);
        c.add_function("matchTagId", match_tag_id);
        c.add_function("hasTagKey", has_tag_key);
        c.add_function("hasTagKeyId", has_tag_key_id);
        c
    })
}

/// The longest condition expression accepted, in bytes. Google documents no byte limit for
/// an allow binding's expression beyond its 12 logical operators; this bound (the size of a
/// whole binding's worth of conditions) keeps every parser's work small.
pub const MAX_EXPRESSION_BYTES: usize = 12_800;
/// The deepest nesting of brackets and unary operators accepted. CEL's own specification asks
/// implementations for at least 12 levels of nested parentheses (cel-spec, langdef.md,
/// "Performance"); 32 is well past any real condition, and bounds the recursion of the CEL
/// parser, whose frames overflow a thread's stack near 300 levels.
pub const MAX_NESTING: usize = 32;
/// The most operators (of any kind, member access included) an expression may hold: each adds a
/// level to the syntax tree that parsing and evaluation walk recursively.
pub const MAX_OPERATORS: usize = 256;

/// Refuse an expression too long or too deeply nested to parse safely, before any parser
/// sees it: brackets, and runs of unary `!`/`-`, count as nesting; every operator counts toward
/// [`MAX_OPERATORS`]. Characters inside string literals count too: telling strings apart
/// would need CEL's whole lexer (raw `r'…'` and triple-quoted strings, escapes), and a scanner
/// fooled into seeing a string where there is none would let nesting through. Counting them
/// can only refuse more, and no real condition comes near the bounds.
pub fn check_size(expr: &str) -> Result<(), String> {
    if expr.len() > MAX_EXPRESSION_BYTES {
        return Err(format!(
            "the expression is {} bytes long; at most {MAX_EXPRESSION_BYTES} are allowed",
            expr.len()
        ));
    }
    let (mut depth, mut unary, mut ops) = (0usize, 0usize, 0usize);
    for (i, c) in expr.bytes().enumerate() {
        match c {
            b'(' | b'[' | b'{' => {
                depth += 1;
                unary = 0;
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'!' | b'-' => {
                unary += 1;
                ops += 1;
            }
            b'&' | b'|' | b'+' | b'*' | b'/' | b'%' | b'<' | b'>' | b'=' | b'?' | b':' | b'.'
            | b',' => {
                ops += 1;
                unary = 0;
            }
            c if c.is_ascii_whitespace() => {}
            _ => unary = 0,
        }
        if depth + unary > MAX_NESTING {
            return Err(format!(
                "the expression nests deeper than {MAX_NESTING} levels at position {i}"
            ));
        }
        if ops > MAX_OPERATORS {
            return Err(format!(
                "the expression holds more than {MAX_OPERATORS} operators"
            ));
        }
    }
    Ok(())
}

impl Condition {
    /// Parses `expr` as CEL. Only syntax is checked here; an expression that references an
    /// unknown attribute or function compiles but evaluates to `false` (see [`Condition::eval`]).
    pub fn compile(expr: &str) -> Result<Condition, PolicyError> {
        if expr.trim().is_empty() {
            return Err(PolicyError::new(
                "Condition expression must not be empty.".to_string(),
            ));
        }
        if let Err(why) = check_size(expr) {
            return Err(PolicyError::new(format!(
                "Condition expression is not valid: {why}."
            )));
        }
        // The ANTLR-generated parser panics on some malformed inputs (e.g. a dangling `<`)
        // instead of returning an error; bad input must never bring the server down.
        let parsed = std::panic::catch_unwind(|| Program::compile(expr));
        let program = match parsed {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                return Err(PolicyError::new(format!(
                    "Condition expression '{expr}' is not valid CEL: {}",
                    e.to_string().trim()
                )));
            }
            Err(_) => {
                return Err(PolicyError::new(format!(
                    "Condition expression '{expr}' is not valid CEL."
                )));
            }
        };
        Ok(Condition {
            program,
            expression: expr.to_string(),
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// `true` only if the expression evaluates to boolean `true`. Errors and non-boolean
    /// results are `false`: an allow binding whose condition cannot be evaluated must not grant
    /// (fail closed).
    pub fn eval(&self, ctx: &ConditionContext) -> bool {
        matches!(self.eval_value(ctx), Ok(Value::Bool(true)))
    }

    /// The raw outcome, for explanations: `Ok(true|false)` or the evaluation error text.
    pub fn eval_detailed(&self, ctx: &ConditionContext) -> Result<bool, String> {
        match self.eval_value(ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("condition did not yield a boolean: {other:?}")),
            Err(e) => Err(e),
        }
    }

    fn eval_value(&self, ctx: &ConditionContext) -> Result<Value, String> {
        let mut c = base_context().new_inner_scope();
        let mut request: HashMap<&str, Value> = HashMap::with_capacity(1);
        request.insert("time", Value::Timestamp(ctx.request_time.fixed_offset()));
        let mut resource: HashMap<&str, Value> = HashMap::with_capacity(7);
        resource.insert("name", Value::String(Arc::new(ctx.resource_name.into())));
        resource.insert("type", Value::String(Arc::new(ctx.resource_type.into())));
        resource.insert(
            "service",
            Value::String(Arc::new(ctx.resource_service.into())),
        );
        let t = ctx.tags;
        resource.insert(
            TAG_PAIRS,
            strings(t.iter().flat_map(|t| {
                t.key_names
                    .iter()
                    .map(|k| format!("{k}\u{1}{}", t.value_short_name))
            })),
        );
        resource.insert(
            TAG_ID_PAIRS,
            strings(t.iter().map(|t| format!("{}\u{1}{}", t.key_id, t.value_id))),
        );
        resource.insert(
            TAG_KEYS,
            strings(t.iter().flat_map(|t| t.key_names.iter().cloned())),
        );
        resource.insert(TAG_KEY_IDS, strings(t.iter().map(|t| t.key_id.clone())));
        c.add_variable_from_value("request", request);
        c.add_variable_from_value("resource", resource);
        self.program.execute(&c).map_err(|e| e.to_string())
    }
}

/// Number of logical operators (`&&`, `||`, `!`) in an expression, outside string literals.
/// Google limits a condition to 12.
pub fn logical_operator_count(expr: &str) -> usize {
    let b = expr.as_bytes();
    let mut n = 0;
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
        } else {
            match c {
                b'\'' | b'"' => quote = Some(c),
                b'&' | b'|' if b.get(i + 1) == Some(&c) => {
                    n += 1;
                    i += 2;
                    continue;
                }
                b'!' if b.get(i + 1) != Some(&b'=') => n += 1,
                _ => {}
            }
        }
        i += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ctx(name: &str) -> ConditionContext<'_> {
        ConditionContext {
            request_time: chrono::Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap(),
            resource_name: name,
            resource_type: "run.googleapis.com/WorkerPool",
            resource_service: "run.googleapis.com",
            tags: &[],
        }
    }

    #[test]
    fn tag_functions_read_the_resources_effective_tags() {
        let tags = [Tag {
            key_id: "tagKeys/1".into(),
            key_names: vec!["100/env".into()],
            value_id: "tagValues/2".into(),
            value_short_name: "dev".into(),
        }];
        let c = ConditionContext {
            tags: &tags,
            ..ctx("projects/p")
        };
        let holds = |e: &str| Condition::compile(e).unwrap().eval(&c);
        assert!(holds("resource.matchTag('100/env', 'dev')"));
        assert!(!holds("resource.matchTag('100/env', 'prod')"));
        assert!(holds("resource.matchTagId('tagKeys/1', 'tagValues/2')"));
        assert!(holds(
            "resource.hasTagKey('100/env') && resource.hasTagKeyId('tagKeys/1')"
        ));
        assert!(!holds("resource.hasTagKey('100/team')"));
        assert!(
            !Condition::compile("resource.matchTag('100/env', 'dev')")
                .unwrap()
                .eval(&ctx("projects/p"))
        );
    }

    #[test]
    fn request_time_compares() {
        let before =
            Condition::compile("request.time < timestamp('2027-01-01T00:00:00Z')").unwrap();
        let after = Condition::compile("request.time < timestamp('2025-01-01T00:00:00Z')").unwrap();
        assert!(before.eval(&ctx("x")));
        assert!(!after.eval(&ctx("x")));
        // 10:00 UTC on 1 March is 11:00 in Berlin (CET) and 15:30 in India.
        for (e, want) in [
            ("request.time.getHours('Europe/Berlin') == 11", true),
            ("request.time.getHours() == 10", true),
            ("request.time.getHours('UTC') == 10", true),
            (
                "request.time.getHours('+05:30') == 15 && request.time.getMinutes('+05:30') == 30",
                true,
            ),
            ("request.time.getDayOfWeek('Europe/Berlin') == 0", true), // a Sunday
            (
                "request.time.getFullYear() == 2026 && request.time.getMonth() == 2",
                true,
            ),
            ("request.time.getHours('Mars/Olympus') == 10", false),
        ] {
            assert_eq!(Condition::compile(e).unwrap().eval(&ctx("x")), want, "{e}");
        }
    }

    #[test]
    fn resource_attributes_and_extract() {
        let c = Condition::compile(
            "resource.name.startsWith('projects/p1/') && resource.type == 'run.googleapis.com/WorkerPool' && resource.service == 'run.googleapis.com'",
        )
        .unwrap();
        assert!(c.eval(&ctx("projects/p1/locations/l/workerPools/w")));
        assert!(!c.eval(&ctx("projects/p2/locations/l/workerPools/w")));
        let e = Condition::compile("resource.name.extract('/workerPools/{name}/') == 'w'").unwrap();
        assert!(e.eval(&ctx("projects/p1/locations/l/workerPools/w/revisions/r")));
        let e2 = Condition::compile("resource.name.extract('projects/{p}/') == 'p1'").unwrap();
        assert!(e2.eval(&ctx("projects/p1/locations/l")));
        let neg = Condition::compile("!resource.name.endsWith('/w') || false").unwrap();
        assert!(!neg.eval(&ctx("projects/p1/workerPools/w")));
    }

    #[test]
    fn errors_fail_closed_and_bad_syntax_rejected() {
        assert!(Condition::compile("request.time <").is_err());
        assert!(Condition::compile("  ").is_err());
        let unknown = Condition::compile("nosuch.attr == 1").unwrap();
        assert!(!unknown.eval(&ctx("x")));
        let non_bool = Condition::compile("resource.name").unwrap();
        assert!(!non_bool.eval(&ctx("x")));
    }

    #[test]
    fn counts_logical_operators_outside_strings() {
        assert_eq!(logical_operator_count("a && b || !c && d != 'x&&y||!'"), 4);
    }

    #[test]
    fn condition_is_send_sync() {
        fn assert_ss<T: Send + Sync>() {}
        assert_ss::<Condition>();
    }
}
