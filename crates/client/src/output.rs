//! gcloud's `--format`, `--flatten` and the default printers, over plain JSON values.
//!
//! Supported: `json`, `yaml`, `none`, `value(KEYS)`, `table(KEYS)`, `csv(KEYS)`, where a key is
//! a dotted path (`bindings.role`, `parent.id`), optionally followed by the transforms
//! `.basename()` / `.segment()` / `.segment(N)` / `.len()` and `:label=TEXT`. A path that
//! crosses a list maps over it (`bindings.role` → every role), as gcloud does. Output keys are
//! sorted, as gcloud's are, whatever order the server sent them in.

use anyhow::{Result, bail};
use serde_json::{Map, Value};

/// One column of a `value`/`table`/`csv` projection.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub path: Vec<String>,
    pub transform: Option<Transform>,
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    /// Last `/`-separated segment (`projects/123` → `123`).
    Basename,
    /// `/`-separated segment N (negative counts from the end); `segment()` = last.
    Segment(i64),
    /// Length of a list, map or string.
    Len,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    Json,
    Yaml,
    None,
    Value(Vec<Key>),
    Table(Vec<Key>),
    Csv(Vec<Key>),
}

impl Format {
    pub fn parse(spec: &str) -> Result<Format> {
        let spec = spec.trim();
        let (name, body) = match spec.find('(') {
            Some(open) => {
                let Some(inner) = spec[open + 1..].strip_suffix(')') else {
                    bail!("Invalid format [{spec}]: missing `)`.");
                };
                (&spec[..open], Some(inner))
            }
            None => (spec, None),
        };
        // gcloud allows attributes like `table[box]`; they only change decoration, so drop them.
        let name = name.split('[').next().unwrap_or(name).trim();
        let keys = || parse_keys(body.unwrap_or(""));
        Ok(match name {
            "json" => Format::Json,
            // `export` is the YAML of the resource without output-only fields; for the resources
            // this client prints the server already omits nothing worth stripping.
            "yaml" | "export" | "default" => Format::Yaml,
            "none" | "disable" => Format::None,
            "value" | "get" => Format::Value(keys()?),
            "table" => Format::Table(keys()?),
            "csv" => Format::Csv(keys()?),
            other => bail!(
                "Format [{other}] is not supported; use json, yaml, none, value(...), table(...) or csv(...)."
            ),
        })
    }
}

fn parse_keys(body: &str) -> Result<Vec<Key>> {
    split_top_level(body)
        .into_iter()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .map(|k| parse_key(&k))
        .collect()
}

/// Split on commas that are not inside parentheses (`segment(1)` has none, but `yesno(a,b)` would).
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_key(spec: &str) -> Result<Key> {
    let (path_part, label) = match spec.split_once(":label=") {
        Some((p, l)) => (
            p,
            Some(l.trim_matches(|c| c == '"' || c == '\'').to_string()),
        ),
        // Other attributes (`:sort=1`, `:align=left`) don't change the text; ignore them.
        None => (spec.split(':').next().unwrap_or(spec), None),
    };
    let mut segments: Vec<&str> = path_part.split('.').collect();
    let mut transform = None;
    if let Some(last) = segments.last()
        && let Some(open) = last.find('(')
    {
        let fname = &last[..open];
        let arg = last[open + 1..].trim_end_matches(')').trim();
        transform = Some(match fname {
            "basename" => Transform::Basename,
            "segment" if arg.is_empty() => Transform::Segment(-1),
            "segment" => Transform::Segment(
                arg.parse()
                    .map_err(|_| anyhow::anyhow!("Invalid segment index [{arg}]."))?,
            ),
            "len" => Transform::Len,
            other => bail!("Unknown transform [{other}()] in format key [{spec}]."),
        });
        segments.pop();
    }
    // `bindings[].role` (flatten syntax) means the same as `bindings.role` here.
    let path = segments
        .iter()
        .map(|s| s.trim_end_matches("[]").to_string())
        .filter(|s| !s.is_empty())
        .collect();
    Ok(Key {
        path,
        transform,
        label,
    })
}

/// Resolve a dotted path, mapping over lists on the way. `None` when absent.
pub fn lookup(value: &Value, path: &[String]) -> Option<Value> {
    let Some((head, rest)) = path.split_first() else {
        return Some(value.clone());
    };
    match value {
        Value::Object(map) => lookup(map.get(head)?, rest),
        Value::Array(items) => {
            let found: Vec<Value> = items.iter().filter_map(|v| lookup(v, path)).collect();
            if found.is_empty() {
                None
            } else {
                Some(Value::Array(found))
            }
        }
        _ => None,
    }
}

fn apply(transform: &Option<Transform>, v: Value) -> Value {
    let Some(t) = transform else { return v };
    match (t, v) {
        (_, Value::Array(items)) if *t != Transform::Len => {
            Value::Array(items.into_iter().map(|i| apply(transform, i)).collect())
        }
        (Transform::Len, Value::Array(a)) => Value::from(a.len()),
        (Transform::Len, Value::Object(m)) => Value::from(m.len()),
        (Transform::Len, Value::String(s)) => Value::from(s.chars().count()),
        (Transform::Basename, Value::String(s)) => {
            Value::String(s.rsplit('/').next().unwrap_or("").to_string())
        }
        (Transform::Segment(n), Value::String(s)) => {
            let parts: Vec<&str> = s.split('/').collect();
            let idx = if *n < 0 { parts.len() as i64 + n } else { *n };
            Value::String(
                usize::try_from(idx)
                    .ok()
                    .and_then(|i| parts.get(i))
                    .unwrap_or(&"")
                    .to_string(),
            )
        }
        (_, other) => other,
    }
}

/// A cell's text. Lists join with `sep` (`;` in value/csv, `,` in tables, as gcloud does);
/// maps print as `k=v` pairs.
fn text(v: &Value, sep: &str) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items
            .iter()
            .map(|i| text(i, sep))
            .collect::<Vec<_>>()
            .join(sep),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v, sep)))
            .collect::<Vec<_>>()
            .join(sep),
    }
}

fn cell(record: &Value, key: &Key, sep: &str) -> String {
    lookup(record, &key.path)
        .map(|v| text(&apply(&key.transform, v), sep))
        .unwrap_or_default()
}

fn heading(key: &Key) -> String {
    key.label.clone().unwrap_or_else(|| {
        key.path
            .last()
            .map(|s| to_upper_snake(s))
            .unwrap_or_default()
    })
}

/// `projectId` → `PROJECT_ID`, as gcloud derives table headings.
fn to_upper_snake(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_uppercase());
    }
    out
}

/// Recursively sort object keys so output is stable and matches gcloud's sorted printers.
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn yaml(v: &Value) -> String {
    let s = serde_yaml_ng::to_string(&sorted(v)).unwrap_or_default();
    if s.ends_with('\n') { s } else { s + "\n" }
}

fn json(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(&sorted(v)).unwrap_or_default();
    s.push('\n');
    s
}

/// Render one resource (a describe).
pub fn render_one(format: &Format, record: &Value) -> String {
    match format {
        Format::Json => json(record),
        Format::Yaml => yaml(record),
        other => render_list(other, std::slice::from_ref(record)),
    }
}

/// Render a list of resources (a list command, or a flattened policy).
pub fn render_list(format: &Format, records: &[Value]) -> String {
    match format {
        Format::None => String::new(),
        Format::Json => json(&Value::Array(records.to_vec())),
        // gcloud prints a list as a YAML stream, each document introduced by `---`.
        Format::Yaml => records
            .iter()
            .map(|r| format!("---\n{}", yaml(r)))
            .collect(),
        Format::Value(keys) => records
            .iter()
            .map(|r| {
                let cells: Vec<String> = keys.iter().map(|k| cell(r, k, ";")).collect();
                format!("{}\n", cells.join("\t"))
            })
            .collect(),
        Format::Csv(keys) => {
            let mut out = keys.iter().map(heading).collect::<Vec<_>>().join(",") + "\n";
            for r in records {
                let cells: Vec<String> =
                    keys.iter().map(|k| csv_escape(&cell(r, k, ";"))).collect();
                out += &(cells.join(",") + "\n");
            }
            out
        }
        Format::Table(keys) => {
            if records.is_empty() {
                return String::new();
            }
            let mut rows = vec![keys.iter().map(heading).collect::<Vec<_>>()];
            rows.extend(
                records
                    .iter()
                    .map(|r| keys.iter().map(|k| cell(r, k, ",")).collect()),
            );
            table(&rows)
        }
    }
}

fn csv_escape(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Left-aligned columns separated by two spaces, no trailing blanks (gcloud's plain table).
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map(|s| s.chars().count()).unwrap_or(0))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line += cell;
            if c + 1 < row.len() {
                line += &" ".repeat(widths[c] - cell.chars().count() + 2);
            }
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// gcloud's `--flatten=a.b`: one record per element of the list at that path, with the list
/// replaced by the element (`--flatten=bindings[].members` → one record per member).
pub fn flatten(records: Vec<Value>, spec: &str) -> Vec<Value> {
    let mut records = records;
    for field in spec.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let path: Vec<String> = field
            .split('.')
            .map(|s| s.trim_end_matches("[]").to_string())
            .collect();
        records = records
            .into_iter()
            .flat_map(|r| flatten_one(r, &path))
            .collect();
    }
    records
}

fn flatten_one(record: Value, path: &[String]) -> Vec<Value> {
    let Some((head, rest)) = path.split_first() else {
        return vec![record];
    };
    let Value::Object(map) = &record else {
        return vec![record];
    };
    let Some(child) = map.get(head) else {
        return vec![record];
    };
    let expanded: Vec<Value> = match child {
        Value::Array(items) => items
            .iter()
            .flat_map(|i| flatten_one(i.clone(), rest))
            .collect(),
        other => flatten_one(other.clone(), rest),
    };
    expanded
        .into_iter()
        .map(|e| {
            let mut m = map.clone();
            m.insert(head.clone(), e);
            Value::Object(m)
        })
        .collect()
}

/// One `--filter` term: `key:value` (has: case-insensitive substring of the field or of any
/// element; `key:*` = present), `key=value` (equal, case-insensitive), `key!=value`.
#[derive(Debug, Clone, PartialEq)]
struct Term {
    path: Vec<String>,
    op: &'static str,
    value: String,
}

/// gcloud's `--filter`, reduced to what docs use most: terms joined by whitespace or `AND`.
/// Anything fancier (OR, parentheses, regexes) is rejected rather than half-understood.
pub fn filter(records: Vec<Value>, spec: &str) -> Result<Vec<Value>> {
    let mut terms = Vec::new();
    for word in split_terms(spec) {
        if word == "AND" {
            continue;
        }
        if word == "OR" || word == "NOT" || word.starts_with('(') || word.starts_with('-') {
            bail!(
                "--filter supports only `key:value`, `key=value` and `key!=value` terms joined by AND."
            );
        }
        let (key, op, value) = if let Some((k, v)) = word.split_once("!=") {
            (k, "!=", v)
        } else if let Some((k, v)) = word.split_once('=') {
            (k, "=", v)
        } else if let Some((k, v)) = word.split_once(':') {
            (k, ":", v)
        } else {
            bail!("Invalid --filter term [{word}]: expected key:value, key=value or key!=value.");
        };
        terms.push(Term {
            path: key
                .split('.')
                .map(|s| s.trim_end_matches("[]").to_string())
                .collect(),
            op,
            value: value.trim_matches(|c| c == '"' || c == '\'').to_lowercase(),
        });
    }
    Ok(records
        .into_iter()
        .filter(|r| terms.iter().all(|t| term_matches(r, t)))
        .collect())
}

/// Split on whitespace outside quotes.
fn split_terms(spec: &str) -> Vec<String> {
    let (mut out, mut cur, mut quote) = (Vec::new(), String::new(), None);
    for c in spec.chars() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            (c, None) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (c, _) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn leaves(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().flat_map(leaves).collect(),
        other => vec![text(other, ",").to_lowercase()],
    }
}

fn term_matches(record: &Value, t: &Term) -> bool {
    let found = lookup(record, &t.path)
        .map(|v| leaves(&v))
        .unwrap_or_default();
    match t.op {
        ":" if t.value == "*" => found.iter().any(|s| !s.is_empty()),
        ":" => found.iter().any(|s| s.contains(&t.value)),
        "=" => found.contains(&t.value),
        _ => !found.contains(&t.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Value {
        json!({"etag":"BwX=","version":1,"bindings":[
            {"role":"roles/owner","members":["user:a@x.com"]},
            {"role":"roles/viewer","members":["user:b@x.com","user:c@x.com"]}]})
    }

    #[test]
    fn parses_named_formats() {
        assert_eq!(Format::parse("json").unwrap(), Format::Json);
        assert_eq!(Format::parse("yaml").unwrap(), Format::Yaml);
        assert_eq!(
            Format::parse("table[box](name)").unwrap(),
            Format::parse("table(name)").unwrap()
        );
        assert!(Format::parse("xml").is_err());
        assert!(Format::parse("value(name").is_err());
    }

    #[test]
    fn parses_keys_with_transforms_and_labels() {
        let Format::Table(keys) =
            Format::parse("table(projectId, name.basename():label=NUMBER, parent.segment(0))")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(keys[0].path, vec!["projectId"]);
        assert_eq!(keys[1].transform, Some(Transform::Basename));
        assert_eq!(keys[1].label.as_deref(), Some("NUMBER"));
        assert_eq!(keys[2].transform, Some(Transform::Segment(0)));
    }

    #[test]
    fn value_maps_over_lists_and_joins_with_semicolons() {
        let f = Format::parse("value(bindings.role)").unwrap();
        assert_eq!(render_one(&f, &policy()), "roles/owner;roles/viewer\n");
        let f = Format::parse("value(etag,version)").unwrap();
        assert_eq!(render_one(&f, &policy()), "BwX=\t1\n");
    }

    #[test]
    fn table_aligns_and_derives_headings() {
        let rows = vec![
            json!({"projectId":"demo-project","name":"projects/123"}),
            json!({"projectId":"p","name":"projects/4567"}),
        ];
        let f = Format::parse("table(projectId, name.basename():label=PROJECT_NUMBER)").unwrap();
        assert_eq!(
            render_list(&f, &rows),
            "PROJECT_ID    PROJECT_NUMBER\ndemo-project  123\np             4567\n"
        );
    }

    #[test]
    fn yaml_is_sorted_and_list_is_a_stream() {
        let v = json!({"b":1,"a":{"d":2,"c":3}});
        assert_eq!(render_one(&Format::Yaml, &v), "a:\n  c: 3\n  d: 2\nb: 1\n");
        assert_eq!(
            render_list(&Format::Yaml, &[json!({"x":1}), json!({"y":2})]),
            "---\nx: 1\n---\ny: 2\n"
        );
    }

    #[test]
    fn flatten_expands_nested_lists() {
        let rows = flatten(vec![policy()], "bindings[].members");
        assert_eq!(rows.len(), 3);
        let f = Format::parse("value(bindings.role,bindings.members)").unwrap();
        assert_eq!(
            render_list(&f, &rows),
            "roles/owner\tuser:a@x.com\nroles/viewer\tuser:b@x.com\nroles/viewer\tuser:c@x.com\n"
        );
    }

    #[test]
    fn filter_selects_flattened_members() {
        let rows = flatten(vec![policy()], "bindings[].members");
        let hit = filter(rows.clone(), "bindings.members:B@X.COM").unwrap();
        assert_eq!(hit.len(), 1);
        assert_eq!(hit[0]["bindings"]["role"], "roles/viewer");
        let hit = filter(
            rows.clone(),
            "bindings.role=roles/viewer AND bindings.members!=user:b@x.com",
        )
        .unwrap();
        assert_eq!(hit.len(), 1);
        assert_eq!(filter(rows.clone(), "etag:*").unwrap().len(), 3);
        assert_eq!(filter(rows.clone(), "nothing:*").unwrap().len(), 0);
        assert!(filter(rows, "a:b OR c:d").is_err());
    }

    #[test]
    fn missing_fields_are_blank() {
        let f = Format::parse("value(nope.deeper)").unwrap();
        assert_eq!(render_one(&f, &policy()), "\n");
    }
}
