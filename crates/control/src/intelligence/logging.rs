//! Cloud Logging reads (`entries.list`): the filter language `logs read` and clients use, over
//! the audit log and worker pool instance logs.

use runpool_artifacts::logs::Entry;

const SERVICE: &str = "logging.googleapis.com";
/// What reading entries (instance logs and audit logs alike) takes on the project.
const LIST_PERMISSION: &str = "logging.logEntries.list";

/// A parsed Cloud Logging filter, in the forms `logs read` and clients use:
/// `field="value"` terms (`resource.type`, `resource.labels.worker_pool_name`,
/// `resource.labels.revision_name`, `resource.labels.location`, `labels.instanceId`,
/// `severity`), joined by `AND` or whitespace, and `timestamp>="RFC3339"` (or `>`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filter {
    /// `field="value"` terms.
    pub equals: Vec<(String, String)>,
    /// `field:"value"` terms (Cloud Logging's "has": the field contains the value, ignoring
    /// case).
    pub has: Vec<(String, String)>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// `severity>=LEVEL`, as a rank of [`SEVERITIES`].
    pub min_severity: Option<usize>,
}

/// Cloud Logging's `:` on a string: the field contains the value, ignoring case.
fn has(field: &str, value: &str) -> bool {
    field.to_lowercase().contains(&value.to_lowercase())
}

/// Cloud Logging's severities, lowest first.
pub const SEVERITIES: &[&str] = &[
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
];

pub fn severity_rank(s: &str) -> Option<usize> {
    SEVERITIES.iter().position(|x| x.eq_ignore_ascii_case(s))
}

impl Filter {
    pub fn parse(text: &str) -> crate::Result<Filter> {
        const OPS: &[char] = &['=', '!', '>', '<', ':'];
        // Spaces around an operator are allowed (`resource.type = "x"`): drop them first.
        let chars: Vec<char> = text.chars().collect();
        let mut glued = String::new();
        let mut quoted = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == '"' {
                quoted = !quoted;
            }
            if c.is_whitespace() && !quoted {
                let prev = glued.chars().last();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                if prev.is_some_and(|p| OPS.contains(&p)) || next.is_some_and(|n| OPS.contains(n)) {
                    continue;
                }
            }
            glued.push(c);
        }
        let mut f = Filter::default();
        let mut tokens = vec![];
        let mut cur = String::new();
        let mut quoted = false;
        for ch in glued.chars() {
            match ch {
                '"' => {
                    quoted = !quoted;
                    cur.push(ch);
                }
                c if c.is_whitespace() && !quoted => {
                    if !cur.is_empty() {
                        tokens.push(std::mem::take(&mut cur));
                    }
                }
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            tokens.push(cur);
        }
        let bad = |t: &str| {
            crate::Error::invalid(format!(
                "Unsupported filter term '{t}': use field=\"value\" (or field:\"value\") terms joined by AND, timestamp>=\"RFC3339\" and severity>=LEVEL."
            ))
        };
        for t in tokens.iter().filter(|t| !t.eq_ignore_ascii_case("AND")) {
            let unquote = |v: &str| v.trim_matches('"').to_string();
            if let Some(v) = t
                .strip_prefix("timestamp>=")
                .or_else(|| t.strip_prefix("timestamp>"))
            {
                let ts = chrono::DateTime::parse_from_rfc3339(&unquote(v)).map_err(|_| bad(t))?;
                f.since = Some(ts.with_timezone(&chrono::Utc));
            } else if let Some(v) = t.strip_prefix("severity>=") {
                f.min_severity = Some(severity_rank(&unquote(v)).ok_or_else(|| bad(t))?);
            } else if let Some(i) = t.find(['=', ':']) {
                let (k, v) = (&t[..i], &t[i + 1..]);
                if k.ends_with(['!', '<', '>']) {
                    return Err(bad(t));
                }
                let term = (k.trim().to_string(), unquote(v.trim()));
                if t.as_bytes()[i] == b':' {
                    f.has.push(term);
                } else {
                    f.equals.push(term);
                }
            } else {
                return Err(bad(t));
            }
        }
        Ok(f)
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.equals
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }

    /// Whether an entry of `pool` matches every equality term.
    pub fn matches(&self, e: &Entry, project_id: &str, region: &str, pool_id: &str) -> bool {
        if self
            .min_severity
            .is_some_and(|m| severity_rank(severity(&e.stream)).unwrap_or(0) < m)
        {
            return false;
        }
        let value = |k: &str| -> Option<String> {
            Some(match k {
                "textPayload" => e.text.clone(),
                "resource.type" => "cloud_run_worker_pool".into(),
                "resource.labels.worker_pool_name" => pool_id.into(),
                "resource.labels.revision_name" => e.revision.clone(),
                "resource.labels.location" => region.into(),
                "resource.labels.project_id" => project_id.into(),
                "labels.instanceId" => e.instance.clone(),
                "severity" => severity(&e.stream).into(),
                "logName" => format!(
                    "projects/{project_id}/logs/run.googleapis.com%2F{}",
                    e.stream
                ),
                _ => return None,
            })
        };
        self.equals.iter().all(|(k, v)| match k.as_str() {
            // An instance's text matches on a part of it, as before `:` was told apart.
            "textPayload" => e.text.contains(v.as_str()),
            "logName" => value(k).is_some_and(|l| l.ends_with(v.as_str())),
            _ => value(k).is_some_and(|f| f == *v),
        }) && self
            .has
            .iter()
            .all(|(k, v)| value(k).is_some_and(|f| has(&f, v)))
    }
}

/// Cloud Run logs stdout lines as DEFAULT and stderr lines as ERROR.
pub fn severity(stream: &str) -> &'static str {
    if stream == "stderr" {
        "ERROR"
    } else {
        "DEFAULT"
    }
}

/// The value at a dotted path of a JSON entry, as a string (`protoPayload.methodName`).
fn field<'a>(v: &'a serde_json::Value, path: &str) -> Option<std::borrow::Cow<'a, str>> {
    let mut cur = v;
    for seg in path.split('.') {
        cur = cur.get(seg)?;
    }
    match cur {
        serde_json::Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        serde_json::Value::Null => None,
        other => Some(std::borrow::Cow::Owned(other.to_string())),
    }
}

impl Filter {
    /// Whether the filter asks for audit logs (and whether for instance logs).
    pub fn wants(&self) -> (bool, bool) {
        let audit = self.equals.iter().chain(&self.has).any(|(k, v)| {
            k.starts_with("protoPayload.")
                || (k == "logName" && v.contains("cloudaudit"))
                || (k == "resource.type" && v == "audited_resource")
        });
        let instances = self.equals.iter().chain(&self.has).any(|(k, v)| {
            (k == "resource.type" && v == "cloud_run_worker_pool")
                || k.starts_with("resource.labels.worker_pool")
                || (k == "logName" && v.contains("run.googleapis.com"))
        });
        match (audit, instances) {
            (false, false) => (true, true),
            other => other,
        }
    }

    /// Whether an audit entry matches every equality term.
    pub fn matches_json(&self, e: &serde_json::Value) -> bool {
        let rank = field(e, "severity")
            .and_then(|s| severity_rank(&s))
            .unwrap_or(0);
        if self.min_severity.is_some_and(|m| rank < m) {
            return false;
        }
        self.equals.iter().all(|(k, v)| match k.as_str() {
            "logName" => field(e, "logName").is_some_and(|l| l == *v || l.ends_with(v.as_str())),
            _ => field(e, k).is_some_and(|f| f == *v),
        }) && self
            .has
            .iter()
            .all(|(k, v)| field(e, k).is_some_and(|f| has(&f, v)))
    }
}

impl crate::Control {
    /// Cloud Audit Log entries of one project matching `filter` (newest `limit`, oldest
    /// first); `logging.logEntries.list` on the project.
    pub fn list_audit_entries(
        &self,
        caller: &crate::Caller,
        project: &str,
        filter: &str,
        limit: usize,
        newest_first: bool,
    ) -> crate::Result<Vec<serde_json::Value>> {
        let node = self.service_node(caller, project, LIST_PERMISSION, SERVICE)?;
        let f = Filter::parse(filter)?;
        let Some(log) = self.audit_log() else {
            return Ok(vec![]);
        };
        let project_id = self.read().projects[&node.name].project_id.clone();
        log.read(&project_id, f.since, limit, newest_first, |e| {
            f.matches_json(e)
        })
    }

    /// Cloud Logging `entries.list` over worker pool instance logs of one project:
    /// `logging.logEntries.list` on the project; `limit` entries in the order asked.
    pub fn list_log_entries(
        &self,
        caller: &crate::Caller,
        project: &str,
        filter: &str,
        limit: usize,
        newest_first: bool,
    ) -> crate::Result<Vec<(Entry, String, String, String)>> {
        let node = self.service_node(caller, project, LIST_PERMISSION, SERVICE)?;
        let f = Filter::parse(filter)?;
        let Some(store) = self.log_store() else {
            return Ok(vec![]);
        };
        let st = self.read();
        let project_id = st.projects[&node.name].project_id.clone();
        let prefix = format!("projects/{project_id}/locations/");
        let pools: Vec<String> = st
            .worker_pools
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        drop(st);
        let mut out = vec![];
        for pool in pools {
            let parts: Vec<&str> = pool.split('/').collect();
            let (region, pool_id) = (parts[3].to_string(), parts[5].to_string());
            if f.get("resource.labels.worker_pool_name")
                .is_some_and(|w| w != pool_id)
            {
                continue;
            }
            for e in store.read(&pool, f.since, usize::MAX) {
                if f.matches(&e, &project_id, &region, &pool_id) {
                    out.push((e, project_id.clone(), region.clone(), pool_id.clone()));
                }
            }
        }
        out.sort_by_key(|(e, ..)| e.time);
        // Oldest first keeps the oldest `limit`; newest first the newest, newest leading.
        if newest_first {
            out.reverse();
        }
        out.truncate(limit);
        Ok(out)
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn filters_parse_as_gcloud_writes_them() {
        let f = Filter::parse(r#"resource.type = "cloud_run_worker_pool" AND severity>=WARNING AND textPayload:"x y""#).unwrap();
        assert_eq!(
            f.equals,
            vec![("resource.type".into(), "cloud_run_worker_pool".into())]
        );
        assert_eq!(f.has, vec![("textPayload".into(), "x y".into())]);
        assert_eq!(f.min_severity, severity_rank("WARNING"));
        let f = Filter::parse(r#"timestamp >= "2026-01-01T00:00:00Z""#).unwrap();
        assert!(f.since.is_some());
        assert!(Filter::parse("severity>=LOUD").is_err());
        assert!(
            Filter::parse("timestamp<=\"2026-01-01T00:00:00Z\"").is_err(),
            "unsupported, not silently wrong"
        );
        assert!(Filter::parse("justaword").is_err());
    }
}
