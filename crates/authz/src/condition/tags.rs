//! Tag conditions: the CEL subset Google accepts in Org Policy v2 rules and in IAM deny rules'
//! `denialCondition`, over the tags of the resource being evaluated. (Allow bindings take full
//! CEL, [`super::Condition`]; its tag functions mean what these mean.)
//!
//! Google documents a rule's `condition.expression` as 1 to 10 subexpressions joined by `||`
//! or `&&`, each one of
//! - `resource.matchTag('ORG_ID/KEY_SHORT_NAME', 'VALUE_SHORT_NAME')` (a project-parented key
//!   is namespaced by its project id or number instead of the organization id),
//! - `resource.matchTagId('tagKeys/KEY_ID', 'tagValues/VALUE_ID')`,
//! - `resource.hasTagKey('ORG_ID/KEY_SHORT_NAME')`,
//! - `resource.hasTagKeyId('tagKeys/KEY_ID')`.
//!
//! Parentheses and `!` are accepted too (they are plain CEL and a careful user expects them);
//! anything else is refused when the policy is written, with a message saying what is wrong
//! and where. A dedicated parser rather than a general CEL engine: the grammar is this small,
//! and checking it precisely is what gives the user a clear 400 instead of a rule that
//! silently never matches.
//!
//! Evaluation is pure: it looks only at the [`Tag`]s it is given (the resource's
//! effective tags, its own and those inherited from its ancestors).

use super::Tag;

/// The most subexpressions (tag function calls) a condition may hold, as Google documents.
pub const MAX_SUBEXPRESSIONS: usize = 10;

/// The four tag functions, defined once for every kind of condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagFunction {
    MatchTag,
    MatchTagId,
    HasTagKey,
    HasTagKeyId,
}

impl TagFunction {
    fn of(name: &str) -> Option<TagFunction> {
        Some(match name {
            "matchTag" => TagFunction::MatchTag,
            "matchTagId" => TagFunction::MatchTagId,
            "hasTagKey" => TagFunction::HasTagKey,
            "hasTagKeyId" => TagFunction::HasTagKeyId,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            TagFunction::MatchTag => "matchTag",
            TagFunction::MatchTagId => "matchTagId",
            TagFunction::HasTagKey => "hasTagKey",
            TagFunction::HasTagKeyId => "hasTagKeyId",
        }
    }
    /// Whether a resource with these effective tags answers the call with these (checked)
    /// arguments.
    pub fn holds(self, tags: &[Tag], args: &[impl AsRef<str>]) -> bool {
        let arg = |i: usize| args.get(i).map(AsRef::as_ref).unwrap_or_default();
        tags.iter().any(|t| match self {
            TagFunction::MatchTag => {
                t.key_names.iter().any(|k| k == arg(0)) && t.value_short_name == arg(1)
            }
            TagFunction::MatchTagId => t.key_id == arg(0) && t.value_id == arg(1),
            TagFunction::HasTagKey => t.key_names.iter().any(|k| k == arg(0)),
            TagFunction::HasTagKeyId => t.key_id == arg(0),
        })
    }
    fn arity(self) -> usize {
        match self {
            TagFunction::MatchTag | TagFunction::MatchTagId => 2,
            TagFunction::HasTagKey | TagFunction::HasTagKeyId => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Or(Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Call(TagFunction, Vec<String>),
}

/// A parsed, checked condition.
#[derive(Debug, Clone, PartialEq)]
pub struct TagCondition {
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Dot,
    Comma,
    LParen,
    RParen,
    And,
    Or,
    Not,
}

/// Split an expression into tokens, each with its byte offset (for messages).
fn lex(expr: &str) -> Result<Vec<(usize, Tok)>, String> {
    let b = expr.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'.' => out.push((start, Tok::Dot)),
            b',' => out.push((start, Tok::Comma)),
            b'(' => out.push((start, Tok::LParen)),
            b')' => out.push((start, Tok::RParen)),
            b'!' => out.push((start, Tok::Not)),
            b'&' | b'|' => {
                if b.get(i + 1) != Some(&c) {
                    return Err(format!(
                        "unexpected '{}' at position {start}; use '&&' or '||'",
                        c as char
                    ));
                }
                out.push((start, if c == b'&' { Tok::And } else { Tok::Or }));
                i += 2;
                continue;
            }
            b'\'' | b'"' => {
                let quote = c as char;
                let mut s = String::new();
                let mut chars = expr[i + 1..].char_indices();
                let mut end = None;
                while let Some((off, ch)) = chars.next() {
                    if ch == quote {
                        end = Some(i + 1 + off + 1);
                        break;
                    }
                    if ch == '\\' {
                        let Some((_, e)) = chars.next() else { break };
                        s.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                        continue;
                    }
                    s.push(ch);
                }
                let Some(end) = end else {
                    return Err(format!("unterminated string starting at position {start}"));
                };
                out.push((start, Tok::Str(s)));
                i = end;
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                out.push((start, Tok::Ident(expr[i..j].to_string())));
                i = j;
                continue;
            }
            _ => {
                let ch = expr[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected '{ch}' at position {start}"));
            }
        }
        i += 1;
    }
    Ok(out)
}

struct Parser<'a> {
    toks: &'a [(usize, Tok)],
    pos: usize,
    end: usize,
    calls: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }
    fn at(&self) -> usize {
        self.toks.get(self.pos).map(|(p, _)| *p).unwrap_or(self.end)
    }
    fn expect(&mut self, want: Tok, what: &str) -> Result<(), String> {
        if self.peek() == Some(&want) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected {what} at position {}", self.at()))
        }
    }

    fn or(&mut self) -> Result<Node, String> {
        self.binary(Tok::Or, Self::and, Node::Or)
    }

    fn and(&mut self) -> Result<Node, String> {
        self.binary(Tok::And, Self::unary, Node::And)
    }

    /// `operand (op operand)*`, left-associative: `||` and `&&` differ only in their token,
    /// what binds tighter, and the node they make.
    fn binary(
        &mut self,
        op: Tok,
        operand: fn(&mut Self) -> Result<Node, String>,
        node: fn(Box<Node>, Box<Node>) -> Node,
    ) -> Result<Node, String> {
        let mut left = operand(self)?;
        while self.peek() == Some(&op) {
            self.pos += 1;
            let right = operand(self)?;
            left = node(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, String> {
        match self.peek() {
            Some(Tok::Not) => {
                self.pos += 1;
                Ok(Node::Not(Box::new(self.unary()?)))
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                let inner = self.or()?;
                self.expect(Tok::RParen, "')'")?;
                Ok(inner)
            }
            _ => self.call(),
        }
    }

    fn call(&mut self) -> Result<Node, String> {
        let at = self.at();
        match self.peek() {
            Some(Tok::Ident(id)) if id == "resource" => self.pos += 1,
            _ => {
                return Err(format!(
                    "expected resource.matchTag(...), resource.matchTagId(...), resource.hasTagKey(...) or resource.hasTagKeyId(...) at position {at}"
                ));
            }
        }
        self.expect(Tok::Dot, "'.' after 'resource'")?;
        let at = self.at();
        let func = match self.peek() {
            Some(Tok::Ident(name)) => TagFunction::of(name).ok_or_else(|| {
                format!(
                    "unsupported function 'resource.{name}' at position {at}: org policy conditions may use only resource.matchTag, resource.matchTagId, resource.hasTagKey and resource.hasTagKeyId"
                )
            })?,
            _ => return Err(format!("expected a function name at position {at}")),
        };
        self.pos += 1;
        self.expect(Tok::LParen, &format!("'(' after resource.{}", func.name()))?;
        let mut args = vec![];
        loop {
            let at = self.at();
            match self.peek() {
                Some(Tok::Str(s)) => {
                    args.push(s.clone());
                    self.pos += 1;
                }
                _ => {
                    return Err(format!(
                        "resource.{} takes string literal arguments (position {at})",
                        func.name()
                    ));
                }
            }
            match self.peek() {
                Some(Tok::Comma) => self.pos += 1,
                _ => break,
            }
        }
        self.expect(
            Tok::RParen,
            &format!("')' closing resource.{}", func.name()),
        )?;
        if args.len() != func.arity() {
            return Err(format!(
                "resource.{} takes {} argument(s), got {}",
                func.name(),
                func.arity(),
                args.len()
            ));
        }
        check_args(func, &args)?;
        self.calls += 1;
        Ok(Node::Call(func, args))
    }
}

/// A tag key or value short name: 1–63 characters, alphanumeric at both ends, with `-`, `_`
/// and `.` allowed between (Google's rule for TagKey and TagValue short names).
pub fn valid_short_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn numbered(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn check_args(func: TagFunction, args: &[String]) -> Result<(), String> {
    let namespaced_key = |k: &str| {
        let ok = k
            .split_once('/')
            .is_some_and(|(ns, short)| !ns.is_empty() && valid_short_name(short));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "resource.{}: '{k}' is not a namespaced tag key; expected 'ORGANIZATION_ID/KEY_SHORT_NAME' (or 'PROJECT_ID/KEY_SHORT_NAME')",
                func.name()
            ))
        }
    };
    let key_id = |k: &str| {
        if numbered(k, "tagKeys/") {
            Ok(())
        } else {
            Err(format!(
                "resource.{}: '{k}' is not a tag key id; expected 'tagKeys/KEY_ID'",
                func.name()
            ))
        }
    };
    match func {
        TagFunction::MatchTag => {
            namespaced_key(&args[0])?;
            if !valid_short_name(&args[1]) {
                return Err(format!(
                    "resource.matchTag: '{}' is not a tag value short name",
                    args[1]
                ));
            }
        }
        TagFunction::MatchTagId => {
            key_id(&args[0])?;
            if !numbered(&args[1], "tagValues/") {
                return Err(format!(
                    "resource.matchTagId: '{}' is not a tag value id; expected 'tagValues/VALUE_ID'",
                    args[1]
                ));
            }
        }
        TagFunction::HasTagKey => namespaced_key(&args[0])?,
        TagFunction::HasTagKeyId => key_id(&args[0])?,
    }
    Ok(())
}

impl TagCondition {
    /// Parse and check an expression; the error says what is wrong and where.
    pub fn parse(expr: &str) -> Result<TagCondition, String> {
        if expr.trim().is_empty() {
            return Err("the condition expression is empty".to_string());
        }
        super::check_size(expr)?;
        let toks = lex(expr)?;
        let mut p = Parser {
            toks: &toks,
            pos: 0,
            end: expr.len(),
            calls: 0,
        };
        let root = p.or()?;
        if p.pos != toks.len() {
            return Err(format!("unexpected text at position {}", p.at()));
        }
        if p.calls > MAX_SUBEXPRESSIONS {
            return Err(format!(
                "{} subexpressions; a condition may hold at most {MAX_SUBEXPRESSIONS}",
                p.calls
            ));
        }
        Ok(TagCondition { root })
    }

    /// Whether the condition holds for a resource with these effective tags.
    pub fn eval(&self, tags: &[Tag]) -> bool {
        eval(&self.root, tags)
    }
}

fn eval(n: &Node, tags: &[Tag]) -> bool {
    match n {
        Node::Or(a, b) => eval(a, tags) || eval(b, tags),
        Node::And(a, b) => eval(a, tags) && eval(b, tags),
        Node::Not(a) => !eval(a, tags),
        Node::Call(f, args) => f.holds(tags, args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key_id: &str, key: &str, value_id: &str, value: &str) -> Tag {
        Tag {
            key_id: key_id.into(),
            key_names: vec![key.into()],
            value_id: value_id.into(),
            value_short_name: value.into(),
        }
    }

    fn dev() -> Vec<Tag> {
        vec![tag("tagKeys/1", "100/env", "tagValues/11", "dev")]
    }

    fn holds(expr: &str, tags: &[Tag]) -> bool {
        TagCondition::parse(expr)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .eval(tags)
    }

    #[test]
    fn match_tag_compares_namespaced_key_and_value_short_name() {
        assert!(holds("resource.matchTag('100/env', 'dev')", &dev()));
        assert!(holds(r#"resource.matchTag("100/env", "dev")"#, &dev()));
        assert!(!holds("resource.matchTag('100/env', 'prod')", &dev()));
        assert!(!holds("resource.matchTag('200/env', 'dev')", &dev()));
        assert!(!holds("resource.matchTag('100/env', 'dev')", &[]));
    }

    #[test]
    fn match_tag_id_compares_ids() {
        assert!(holds(
            "resource.matchTagId('tagKeys/1', 'tagValues/11')",
            &dev()
        ));
        assert!(!holds(
            "resource.matchTagId('tagKeys/1', 'tagValues/12')",
            &dev()
        ));
    }

    #[test]
    fn has_tag_key_ignores_the_value() {
        assert!(holds("resource.hasTagKey('100/env')", &dev()));
        assert!(holds("resource.hasTagKeyId('tagKeys/1')", &dev()));
        assert!(!holds("resource.hasTagKeyId('tagKeys/2')", &dev()));
    }

    #[test]
    fn a_project_key_answers_to_id_and_number() {
        let t = vec![Tag {
            key_id: "tagKeys/3".into(),
            key_names: vec!["my-proj/team".into(), "123456/team".into()],
            value_id: "tagValues/31".into(),
            value_short_name: "a".into(),
        }];
        assert!(holds("resource.matchTag('my-proj/team', 'a')", &t));
        assert!(holds("resource.matchTag('123456/team', 'a')", &t));
    }

    #[test]
    fn operators_combine_with_cel_precedence() {
        let tags = vec![
            tag("tagKeys/1", "100/env", "tagValues/11", "dev"),
            tag("tagKeys/2", "100/team", "tagValues/21", "a"),
        ];
        let m = |k: &str, v: &str| format!("resource.matchTag('100/{k}', '{v}')");
        assert!(holds(
            &format!("{} && {}", m("env", "dev"), m("team", "a")),
            &tags
        ));
        assert!(!holds(
            &format!("{} && {}", m("env", "dev"), m("team", "b")),
            &tags
        ));
        assert!(holds(
            &format!("{} || {}", m("env", "prod"), m("team", "a")),
            &tags
        ));
        assert!(holds(&format!("!{}", m("env", "prod")), &tags));
        assert!(!holds(
            &format!("!({} || {})", m("env", "dev"), m("x", "y")),
            &tags
        ));
        // && binds tighter than ||: false && false || true == true.
        assert!(holds(
            &format!(
                "{} && {} || {}",
                m("env", "prod"),
                m("team", "b"),
                m("team", "a")
            ),
            &tags
        ));
        assert!(holds(
            &format!("\n  {}\n  && ( {} )\n", m("env", "dev"), m("team", "a")),
            &tags
        ));
    }

    #[test]
    fn bad_expressions_are_refused_with_a_reason() {
        let err = |e: &str| TagCondition::parse(e).unwrap_err();
        assert!(err("").contains("empty"));
        assert!(err("resource.matchTag('100/env', 'dev'").contains("')'"));
        assert!(err("resource.matchTag('100/env')").contains("takes 2 argument"));
        assert!(err("resource.matchTag('env', 'dev')").contains("namespaced tag key"));
        assert!(err("resource.matchTagId('100/env', 'tagValues/1')").contains("tagKeys/KEY_ID"));
        assert!(err("resource.matchTagId('tagKeys/1', 'dev')").contains("tagValues/VALUE_ID"));
        assert!(err("resource.matchLabel('a', 'b')").contains("unsupported function"));
        assert!(err("resource.name == 'x'").contains("unexpected '='"));
        assert!(err("request.auth").contains("expected resource"));
        assert!(err("resource.name < 'x'").contains("unexpected '<'"));
        assert!(err("resource.matchTag('100/env', 'dev') & true").contains("'&&'"));
        assert!(err("resource.matchTag('100/env, 'dev')").contains("position"));
        assert!(err("resource.matchTag('100/env', 'dev') resource").contains("unexpected text"));
        assert!(err("resource.matchTag(env, 'dev')").contains("string literal"));
        let eleven = ["resource.hasTagKey('1/k')"; 11].join(" || ");
        assert!(err(&eleven).contains("at most 10"));
        let ten = ["resource.hasTagKey('1/k')"; 10].join(" || ");
        assert!(TagCondition::parse(&ten).is_ok());
    }

    #[test]
    fn short_names_follow_googles_rule() {
        assert!(valid_short_name("env"));
        assert!(valid_short_name("a.b-c_d9"));
        assert!(!valid_short_name(""));
        assert!(!valid_short_name("-env"));
        assert!(!valid_short_name("env."));
        assert!(!valid_short_name("has space"));
        assert!(!valid_short_name(&"x".repeat(64)));
    }
}
