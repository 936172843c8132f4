//! Conditions, one engine for all three kinds Google has: IAM Conditions in allow bindings
//! (the CEL Google accepts there, compiled once with the `cel` crate, here), and the tag
//! conditions of org policy rules and deny rules ([`tags`], a checked parser of the subset
//! Google allows there). Both read a resource's effective tags through the same four
//! functions ([`tags::TagFunction`]), so every kind agrees on what a tag test means.
//!
//! Attributes: `request.time` (timestamp; `getHours('Europe/Berlin')` and friends are CEL's
//! own, time zone included), `resource.name`, `resource.type`, `resource.service`. Google's
//! `resource.name.extract('/x/{name}/')` is registered here as a custom function, and so are
//! the tag functions `resource.matchTag('ORG_ID/KEY', 'VALUE')`,
//! `resource.matchTagId('tagKeys/ID', 'tagValues/ID')`, `resource.hasTagKey('ORG_ID/KEY')`
//! and `resource.hasTagKeyId('tagKeys/ID')`, over the resource's effective tags.

pub mod tags;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cel::extractors::This;
use cel::objects::Opaque;
use cel::{Context, Env, ExecutionError, FunctionContext, Program, Value};
use tags::TagFunction;

use crate::error::PolicyError;

/// A compiled condition expression. `Send + Sync`: the parsed AST is plain data.
#[derive(Debug)]
pub struct Condition {
    program: Program,
    expression: String,
    /// Whether the expression may call a tag function (only then are the tags handed over).
    reads_tags: bool,
}

/// What a condition may look at.
#[derive(Clone, Copy, Debug)]
pub struct ConditionContext<'a> {
    pub request_time: chrono::DateTime<chrono::Utc>,
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

/// The resource's effective tags, as the tag functions see them: a variable no expression
/// can name (a NUL is not a CEL identifier).
const TAGS: &str = "\0tags";

#[derive(Debug, PartialEq, Eq)]
struct EffectiveTags(Vec<Tag>);

impl Opaque for EffectiveTags {
    fn runtime_type_name(&self) -> &str {
        "runpool.EffectiveTags"
    }
}

/// A tag function called on `resource`, over the tags the evaluation was handed.
fn tag_call(ftx: &FunctionContext, f: TagFunction, args: &[&str]) -> Result<bool, ExecutionError> {
    if ftx.this.is_none() {
        return Err(ftx.error("must be called on resource"));
    }
    Ok(
        match ftx
            .ptx
            .get_variable(TAGS)
            .map(|v| Value::try_from(v.as_ref()))
        {
            Some(Ok(Value::Opaque(o))) => o
                .downcast_ref::<EffectiveTags>()
                .is_some_and(|t| f.holds(&t.0, args)),
            _ => false,
        },
    )
}

fn match_tag(
    ftx: &FunctionContext,
    key: Arc<String>,
    value: Arc<String>,
) -> Result<bool, ExecutionError> {
    tag_call(ftx, TagFunction::MatchTag, &[&key, &value])
}
fn match_tag_id(
    ftx: &FunctionContext,
    key: Arc<String>,
    value: Arc<String>,
) -> Result<bool, ExecutionError> {
    tag_call(ftx, TagFunction::MatchTagId, &[&key, &value])
}
fn has_tag_key(ftx: &FunctionContext, key: Arc<String>) -> Result<bool, ExecutionError> {
    tag_call(ftx, TagFunction::HasTagKey, &[&key])
}
fn has_tag_key_id(ftx: &FunctionContext, key: Arc<String>) -> Result<bool, ExecutionError> {
    tag_call(ftx, TagFunction::HasTagKeyId, &[&key])
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

/// CEL's standard environment, without the optional-field syntax (`a.?b`) Google does not
/// accept in conditions.
fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib().with_optional_support(false)))
}

/// The root context with the standard functions plus `extract` and the tag functions, built
/// once: constructing the function registry costs dozens of allocations, too much to repeat
/// per evaluation.
fn base_context() -> &'static Context<'static, 'static> {
    static BASE: OnceLock<Context<'static, 'static>> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut c = Context::with_env(Arc::clone(env()));
        let names_taken = "no standard CEL function has these names";
        c.add_function("extract", extract).expect(names_taken);
        c.add_function("matchTag", match_tag).expect(names_taken);
        c.add_function("matchTagId", match_tag_id)
            .expect(names_taken);
        c.add_function("hasTagKey", has_tag_key).expect(names_taken);
        c.add_function("hasTagKeyId", has_tag_key_id)
            .expect(names_taken);
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
        let parsed = std::panic::catch_unwind(|| env().compile(expr));
        let program = match parsed {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                // The first error's own words, on one line (the whole report repeats the
                // expression with a caret under each error).
                let why = e.errors.first().map(|e| e.msg.clone()).unwrap_or_default();
                return Err(PolicyError::new(format!(
                    "Condition expression '{expr}' is not valid CEL: {why}"
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
            reads_tags: expr.contains("Tag"),
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
        let mut resource: HashMap<&str, Value> = HashMap::with_capacity(3);
        resource.insert("name", Value::String(Arc::new(ctx.resource_name.into())));
        resource.insert("type", Value::String(Arc::new(ctx.resource_type.into())));
        resource.insert(
            "service",
            Value::String(Arc::new(ctx.resource_service.into())),
        );
        c.add_variable_from_value("request", request);
        c.add_variable_from_value("resource", resource);
        if self.reads_tags {
            c.add_variable_from_value(
                TAGS,
                Value::Opaque(Arc::new(EffectiveTags(ctx.tags.to_vec()))),
            );
        }
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
